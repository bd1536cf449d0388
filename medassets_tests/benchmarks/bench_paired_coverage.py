"""Coverage of the intervals of Table 3's F1 and of the paired differences, by simulation at
several sizes.

    PYTHONPATH=. python medassets_tests/benchmarks/bench_paired_coverage.py [--datasets 1000] [--quick]

Labels: each item falls in one of the 8 joint cells (gold label x model a's answer x model
b's answer) with the probabilities of the population of core/test_metrics.py's coverage test
(prevalence 0.3; a: recall 0.8, false-positive rate 0.1; b: recall 0.7, 0.12; their answers
correlated), so each model's F1 and their difference are known. For each size: the share of datasets whose 95% interval (1000
resamples) covers the true value, for binary_report's F1 of model a, and for
paired_difference's F1(a) - F1(b).

Scores: binormal scores of two models on the same items (negatives N(0, 1) for both, positives
shifted by each model's separation, the two models' scores correlated 0.5 within an item):
AUROC 0.85 and 0.80, so the true difference is 0.05; the coverage of
paired_auroc_difference's interval.

Each cell: the share, and whether it lies within one Monte Carlo SE of 95% (an exact method is
within one SE in about 68% of settings, within two in 95%).
"""


import numpy as np
from monte_carlo import command_line, monte_carlo_se, within
from scipy.special import ndtr, ndtri

from medassets.core.metrics import binary_report, paired_auroc_difference, paired_difference
from medassets_tests.core.test_metrics import PREVALENCE, population_f1, two_models_answers

NOMINAL = 0.95
LABEL_SIZES = [50, 150, 500, 2000]
SCORE_SIZES = [60, 150, 600]
AUROCS, CORRELATION = (0.85, 0.80), 0.5


def scores_dataset(rng, n):
    """Gold labels and the two models' correlated binormal scores of n items."""
    y_true = (rng.random(n) < PREVALENCE).astype(int)
    noise = rng.multivariate_normal([0, 0], [[1, CORRELATION], [CORRELATION, 1]], size=n)
    separation = np.sqrt(2) * ndtri(np.array(AUROCS))
    scores = ndtr(noise + separation * y_true[:, None])
    return y_true, scores[:, 0], scores[:, 1]


def label_coverage(rng, datasets: int) -> None:
    truth = {"a": population_f1([0, 1]), "b": population_f1([0, 2])}
    truth["difference"] = truth["a"] - truth["b"]
    print(f"Labels: true F1 a {truth['a']:.4f}, b {truth['b']:.4f}, difference {truth['difference']:.4f}")
    print("| items | positives (mean) | F1 of a (binary_report) | F1(a) - F1(b) (paired_difference) |")
    print("|--:|--:|--:|--:|")
    for n in LABEL_SIZES:
        covered = {"a": 0, "difference": 0}
        positives = 0
        for seed in range(datasets):
            y_true, a, b = two_models_answers(rng, n)
            positives += y_true.sum()
            report = binary_report(y_true, a, seed=seed)
            covered["a"] += report["f1_low"] <= truth["a"] <= report["f1_high"]
            difference = paired_difference(y_true, a, b, seed=seed)
            covered["difference"] += difference["low"] <= truth["difference"] <= difference["high"]
        print(f"| {n} | {positives / datasets:.1f} | {within(covered['a'], datasets, NOMINAL)} |"
              f" {within(covered['difference'], datasets, NOMINAL)} |", flush=True)


def score_coverage(rng, datasets: int) -> None:
    true_difference = AUROCS[0] - AUROCS[1]
    print(f"\nScores: AUROC a {AUROCS[0]}, b {AUROCS[1]}, correlation {CORRELATION}; true difference {true_difference:.2f}")
    print("| items | positives (mean) | AUROC(a) - AUROC(b) (paired_auroc_difference) |")
    print("|--:|--:|--:|")
    for n in SCORE_SIZES:
        covered = counted = positives = 0
        while counted < datasets:
            y_true, a, b = scores_dataset(rng, n)
            if y_true.sum() in (0, n):  # no AUROC: drawn again
                continue
            positives += y_true.sum()
            difference = paired_auroc_difference(y_true, a, b, seed=counted)
            covered += difference["low"] <= true_difference <= difference["high"]
            counted += 1
        print(f"| {n} | {positives / datasets:.1f} | {within(covered, datasets, NOMINAL)} |", flush=True)


def main() -> None:
    args = command_line(__doc__.splitlines()[0], quick="100 datasets per size").parse_args()
    datasets = 100 if args.quick else args.datasets
    print(f"{datasets} datasets per size, 95% intervals, 1000 resamples; Monte Carlo SE {monte_carlo_se(datasets, NOMINAL):.4f}")
    rng = np.random.default_rng(2024)
    label_coverage(rng, datasets)
    score_coverage(rng, datasets)


if __name__ == "__main__":
    main()

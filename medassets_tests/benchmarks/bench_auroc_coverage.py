"""Coverage of score_report's AUROC and AUPRC intervals, by simulation.

    PYTHONPATH=. python medassets_tests/benchmarks/bench_auroc_coverage.py [--datasets 1000] [--precise 20000] [--quick]

Binormal scores (negatives N(0, 1), positives N(d, 1), mapped into [0, 1] by the normal
CDF) have a known AUROC, Phi(d / sqrt(2)). For each setting: the share of simulated datasets
whose 95% interval covers the true value, its Monte Carlo standard error (the binomial SE at
the nominal 95%), and whether it lies within one SE of 95%, for AUROC (DeLong's variance on
the logit scale, score_report's) and, beside it, the percentile interval of the same 1000
item-bootstrap resamples (score_report's AUROC interval before), and for AUPRC (percentile
bootstrap). The true average precision is the mean AUPRC of 20 datasets of 20,000 items, so
its line is approximate (the estimator's bias at small sizes counts against its coverage).
A dataset without an AUROC interval (perfect separation) counts as not covered.
An exact method is within one SE in about 68% of settings, within two in 95%.

A second table measures the AUROC interval alone (``_auroc_interval``, what score_report
calls; no resampling, so cheap) on --precise datasets per setting, and adds settings with few
positive items, two of them with a share of the positives "lost": scored like negatives, as a
model does with the items it gets confidently wrong (the true AUROC is then lost / 2 + (1 -
lost) times the rest's). Its coverage is known to about 0.0015, and the verdict compares it
with the SE of a --datasets run: "yes" says that a run of the first table is within one SE of
95% in expectation, its own draws aside. Misses are counted by side: the true AUROC below the
interval, above it.
"""

import time

import numpy as np
from monte_carlo import command_line, monte_carlo_se, within
from scipy.special import ndtr, ndtri

from medassets.core.metrics import score_report
from medassets.core.metrics._labels import percentile_interval
from medassets.core.metrics._scores import _auroc_interval, _bootstrap_weights, _Ranking

SETTINGS = [  # items, prevalence, true AUROC: the four, then harder and smaller ones
    (150, 0.4, 0.8), (150, 0.2, 0.9), (600, 0.4, 0.8), (600, 0.1, 0.7), (60, 0.3, 0.85), (300, 0.1, 0.95),
]
FEW_POSITIVES = [  # the second table's too: items, prevalence, true AUROC, share of positives lost
    (100, 0.1, 0.9, 0.0), (1000, 0.05, 0.97, 0.0), (300, 0.1, 0.94, 0.1), (150, 0.3, 0.86, 0.2),
]
NOMINAL = 0.95


def dataset(rng, n, true_auroc, prevalence, lost=0.0):
    y_true = (rng.random(n) < prevalence).astype(int)
    shifted = y_true if lost == 0 else y_true * (rng.random(n) >= lost)
    rest_auroc = (true_auroc - lost / 2) / (1 - lost)
    return y_true, ndtr(rng.normal(size=n) + np.sqrt(2) * ndtri(rest_auroc) * shifted)


def drawn_datasets(rng, n, prevalence, true_auroc, datasets, lost=0.0):
    """`datasets` datasets of the setting, each with two items of each class at least (AUROC's
    interval needs them; a dataset without is drawn again)."""
    counted = 0
    while counted < datasets:
        y_true, scores = dataset(rng, n, true_auroc, prevalence, lost)
        if min(y_true.sum(), n - y_true.sum()) >= 2:
            counted += 1
            yield y_true, scores


def percentile_auroc(y_true, scores, seed):
    """The percentile interval of score_report's own resamples (same seed: the same draws)."""
    ranking = _Ranking(y_true, scores)
    values = np.concatenate([ranking.auroc_ap(w)[0] for w in _bootstrap_weights(len(y_true), 1000, seed)])
    return percentile_interval(values[~np.isnan(values)], NOMINAL)


def main() -> None:
    parser = command_line(__doc__.splitlines()[0], quick="100 datasets per setting, 2,000 in the second table")
    parser.add_argument("--precise", type=int, default=20_000, help="datasets per setting of the second table")
    args = parser.parse_args()
    datasets = 100 if args.quick else args.datasets
    if args.quick:
        args.precise = 2_000
    rng = np.random.default_rng(2024)
    se = monte_carlo_se(datasets, NOMINAL)
    print(f"{datasets} datasets per setting, 95% intervals, 1000 resamples; Monte Carlo SE {se:.4f}")
    print("| items | prevalence | AUROC | AUROC (logit DeLong) | AUROC (percentile, before) | AUPRC (percentile) | ms/call |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for n, prevalence, true_auroc in SETTINGS:
        true_ap = np.mean([score_report(*dataset(rng, 20_000, true_auroc, prevalence), n_resamples=1)["auprc"] for _ in range(20)])
        covered = {"auroc": 0, "before": 0, "auprc": 0}
        elapsed = 0.0
        for seed, (y_true, scores) in enumerate(drawn_datasets(rng, n, prevalence, true_auroc, datasets)):
            started = time.perf_counter()
            report = score_report(y_true, scores, seed=seed)
            elapsed += time.perf_counter() - started
            low, high = percentile_auroc(y_true, scores, seed=seed)
            covered["auroc"] += report["auroc_low"] <= true_auroc <= report["auroc_high"]
            covered["before"] += low <= true_auroc <= high
            covered["auprc"] += report["auprc_low"] <= true_ap <= report["auprc_high"]
        cells = [within(covered[name], datasets, NOMINAL) for name in ("auroc", "before", "auprc")]
        print(f"| {n} | {prevalence} | {true_auroc} | {' | '.join(cells)} | {elapsed / datasets * 1000:.1f} |", flush=True)
    precise_auroc_coverage(rng, args.precise, se)


def precise_auroc_coverage(rng, datasets: int, run_se: float) -> None:
    """The second table: AUROC's interval alone, on `datasets` datasets per setting."""
    print(f"\nAUROC's interval alone, {datasets} datasets per setting (Monte Carlo SE {monte_carlo_se(datasets, NOMINAL):.4f});"
          f" the verdict against the SE of the first table's runs, {run_se:.4f}")
    print("| items | prevalence | AUROC | positives lost | positives (mean) | coverage, within one SE of a run | true below / above |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for n, prevalence, true_auroc, lost in [(*setting, 0.0) for setting in SETTINGS] + FEW_POSITIVES:
        covered = below = above = positives = 0
        for y_true, scores in drawn_datasets(rng, n, prevalence, true_auroc, datasets, lost):
            (low, high), _ = _auroc_interval(y_true, scores, NOMINAL)
            covered += low <= true_auroc <= high
            below += true_auroc < low
            above += high < true_auroc
            positives += y_true.sum()
        print(f"| {n} | {prevalence} | {true_auroc} | {lost} | {positives / datasets:.1f} | {within(covered, datasets, NOMINAL, se=run_se)} |"
              f" {below} / {above} |", flush=True)


if __name__ == "__main__":
    main()

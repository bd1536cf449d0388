"""Coverage of sampled_f1's and paired_sampled_difference's intervals, by simulation, and
their time at the largest sizes.

    PYTHONPATH=. python medassets_tests/benchmarks/bench_sampled_coverage.py [--datasets 1000] [--quick]

(``--datasets 0``: the times only.)

Items are positive with probability 0.3; each item's samples are 1 with the item's own
probability, drawn from Beta(4, 2) for a positive item and Beta(1, 4) for a negative one; 5%
of samples are invalid (scored negative). The true per-sample F1 is that of one dataset of
4,000,000 items with one sample each. For each size (items x samples): the share of datasets
whose 95% interval (1000 resamples) covers it, for sampled_f1's item bootstrap and, beside
it, the two-level bootstrap (items, then each drawn item's samples again, with replacement),
with the Monte Carlo SE at 95% and whether the share lies within one SE.

The paired comparison: model b's probability of a correct sample is model a's lowered by 0.5
on the logit scale (the true difference: the mean over 4,000,000 items of the two
probabilities' difference); coverage of the difference's interval, and the sign-flip test's
rejection rate at 5% when the two models are the same (shift 0; nominal 0.05).
"""

import time

import numpy as np

from monte_carlo import command_line, monte_carlo_se, within

from medassets.core.metrics import paired_sampled_difference, sampled_f1
from medassets.core.metrics._labels import _metric, percentile_interval

NOMINAL = 0.95
SIZES = [(50, 4), (100, 1), (100, 4), (400, 4), (200, 16), (1000, 2), (2000, 8)]
PAIRED_SIZES = [(100, 1), (120, 4), (500, 8)]


def sampled_case(rng, n, k):
    y_true = (rng.random(n) < 0.3).astype(int)
    p = np.where(y_true == 1, rng.beta(4, 2, n), rng.beta(1, 4, n))
    labels = (rng.random((n, k)) < p[:, None]).astype(float)
    labels[rng.random((n, k)) < 0.05] = -1
    return y_true, labels


def paired_case(rng, n, k, shift):
    y_true = (rng.random(n) < 0.3).astype(int)
    right_a = rng.beta(4, 1.5, n)
    right_b = 1 / (1 + (1 - right_a) / right_a * np.exp(shift))
    labels = [
        np.where(rng.random((n, k)) < right[:, None], y_true[:, None], 1 - y_true[:, None]) for right in (right_a, right_b)
    ]
    return y_true, labels[0], labels[1], right_a, right_b


def two_level_f1_interval(y_true, labels, seed, n_resamples=1000):
    """The two-level bootstrap of the mean per-sample F1: items drawn with replacement, then K
    samples of each drawn item with replacement. Items matter through (label, positive
    samples c): a multinomial draw over those groups, then per column a binomial of each
    group's drawn items with probability c / K."""
    rng = np.random.default_rng(seed)
    n, k = labels.shape
    positives = (labels == 1).sum(axis=1)
    groups, counts = np.unique(np.stack([y_true, positives]), axis=1, return_counts=True)
    drawn = rng.multinomial(n, counts / n, size=n_resamples)
    called = rng.binomial(drawn[:, None, :], groups[1] / k, size=(n_resamples, k, len(counts)))
    is_pos = groups[0] == 1
    tp = called[..., is_pos].sum(axis=-1)
    fp = called[..., ~is_pos].sum(axis=-1)
    fn = drawn[:, is_pos].sum(axis=-1)[:, None] - tp
    return percentile_interval(_metric("f1", tp, fp, fn).mean(axis=1), NOMINAL)


def median_seconds(call, rounds=5) -> str:
    """Median wall-clock and CPU seconds of `rounds` calls (CPU time is less sensitive to a
    shared machine's load)."""
    wall, cpu = [], []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return f"{np.median(wall):.3f} s wall, {np.median(cpu):.3f} s CPU"


def main() -> None:
    args = command_line(__doc__.splitlines()[0], quick="100 datasets per size").parse_args()
    datasets = 100 if args.quick else args.datasets
    rng = np.random.default_rng(2026)
    if datasets:
        coverage(rng, datasets)
    y_true, labels = sampled_case(rng, 10_000, 16)
    _, labels_b = sampled_case(rng, 10_000, 16)
    print("\n10,000 items x 16 samples, 1000 resamples, median of 5 calls:")
    print(f"  sampled_f1: {median_seconds(lambda: sampled_f1(y_true, labels))}")
    print(f"  paired_sampled_difference: {median_seconds(lambda: paired_sampled_difference(y_true, labels, labels_b))}")


def coverage(rng, datasets) -> None:
    y_big, labels_big = sampled_case(rng, 4_000_000, 1)
    called = labels_big[:, 0] == 1
    true_f1 = 2 * np.sum(called & (y_big == 1)) / (called.sum() + y_big.sum())
    se = monte_carlo_se(datasets, NOMINAL)
    print(f"{datasets} datasets per size, 95% intervals of 1000 resamples; Monte Carlo SE {se:.4f}; true F1 {true_f1:.4f}")
    print("| items | samples | item bootstrap (sampled_f1) | two-level bootstrap |")
    print("|--:|--:|--:|--:|")
    for n, k in SIZES:
        covered = {"items": 0, "two_level": 0}
        for seed in range(datasets):
            y_true, labels = sampled_case(rng, n, k)
            report = sampled_f1(y_true, labels, seed=seed)
            covered["items"] += report["f1_low"] <= true_f1 <= report["f1_high"]
            low, high = two_level_f1_interval(y_true, labels, seed)
            covered["two_level"] += low <= true_f1 <= high
        print(f"| {n} | {k} | {within(covered['items'], datasets)} | {within(covered['two_level'], datasets)} |", flush=True)

    *_, right_a, right_b = paired_case(rng, 4_000_000, 1, shift=0.5)
    true_diff = float(np.mean(right_a - right_b))
    print(f"\npaired_sampled_difference: true accuracy difference {true_diff:.4f}")
    print("| items | samples | interval coverage | rejection rate at 5%, same models |")
    print("|--:|--:|--:|--:|")
    for n, k in PAIRED_SIZES:
        covered = rejected = 0
        for seed in range(datasets):
            result = paired_sampled_difference(*paired_case(rng, n, k, shift=0.5)[:3], seed=seed)
            covered += result["low"] <= true_diff <= result["high"]
            rejected += paired_sampled_difference(*paired_case(rng, n, k, shift=0.0)[:3], seed=seed)["p_value"] < 0.05
        print(f"| {n} | {k} | {within(covered, datasets)} | {within(rejected, datasets, nominal=0.05)} |", flush=True)


if __name__ == "__main__":
    main()

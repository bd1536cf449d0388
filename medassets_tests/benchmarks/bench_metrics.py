"""Benchmark of medassets.core.metrics: bootstrap speed and interval calibration.

    python medassets_tests/benchmarks/bench_metrics.py [--quick]

1. binary_report's multinomial bootstrap against the reference item-resampling
   bootstrap (an index matrix of resampled items): median time of warm calls, speed-up,
   the intervals side by side, and their gap against the Monte Carlo standard error.
2. Coverage of the 95% intervals over datasets simulated from a known population.
"""

import argparse
import statistics
import time

import numpy as np

from medassets.core.metrics import binary_report

METRICS = ("precision", "recall", "f1")
# Population cell probabilities (tp, fp, fn, tn): prevalence 0.30, recall 0.80,
# precision 0.75.
POPULATION = np.array([0.24, 0.08, 0.06, 0.62])


def population_values(cells):
    tp, fp, fn, _ = cells
    return {
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


def sample_dataset(rng, n):
    """n items drawn from POPULATION: gold labels and predictions."""
    cell = rng.choice(4, size=n, p=POPULATION)  # 0 tp, 1 fp, 2 fn, 3 tn
    return np.isin(cell, (0, 2)).astype(int), np.isin(cell, (0, 1)).astype(int)


def item_resampling_intervals(y_true, y_pred, n_resamples, confidence, seed):
    """Reference bootstrap: resample items through an index matrix."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_resamples, len(y_true)))
    t, p = y_true[idx] == 1, y_pred[idx] == 1
    tp, fp, fn = (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1)
    values = {
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "f1": (2 * tp, 2 * tp + fp + fn),
    }
    tail = (1 - confidence) / 2
    intervals = {}
    for name, (num, den) in values.items():
        ratio = np.divide(num, den, out=np.zeros(n_resamples), where=den > 0)
        intervals[name] = tuple(np.quantile(ratio, [tail, 1 - tail]))
    return intervals


def median_ms(fn, calls):
    fn(0)  # warm-up
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_speed(calls, n_items=1500, n_resamples=10_000):
    y_true, y_pred = sample_dataset(np.random.default_rng(0), n_items)
    print(f"1. Bootstrap speed: {n_items} items, {n_resamples} resamples, "
          f"median of {calls} warm calls")

    reports = []

    def multinomial(i):
        reports.append(binary_report(y_true, y_pred, n_resamples=n_resamples, seed=i))

    def item_resampling(i):
        item_resampling_intervals(y_true, y_pred, n_resamples, 0.95, seed=i)

    fast = median_ms(multinomial, calls)
    slow = median_ms(item_resampling, calls)
    print(f"   binary_report (multinomial)     {fast:9.2f} ms   (target < 25 ms)")
    print(f"   item resampling (index matrix)  {slow:9.2f} ms")
    print(f"   speed-up                        {slow / fast:9.1f} x   (target >= 20 x)")

    # Monte Carlo SE of each bound: spread over the seeded calls (seeds 0..calls-1).
    seeded = reports[1:]  # drop the warm-up call
    report = seeded[0]
    reference = item_resampling_intervals(y_true, y_pred, n_resamples, 0.95, seed=0)
    print(f"   {'metric':<10} {'point':>7}  {'multinomial 95% CI':<20}"
          "item resampling 95% CI")
    gaps, ses = [], []
    for name in METRICS:
        low, high = reference[name]
        print(f"   {name:<10} {report[name]:7.4f}  "
              f"[{report[name + '_low']:.4f}, {report[name + '_high']:.4f}]    "
              f"[{low:.4f}, {high:.4f}]")
        for side, ref in (("low", low), ("high", high)):
            gaps.append(abs(report[f"{name}_{side}"] - ref))
            ses.append(np.std([r[f"{name}_{side}"] for r in seeded], ddof=1))
    print(f"   max |bound difference| {max(gaps):.4f}; Monte Carlo SE of one bound "
          f"(sd over {len(seeded)} seeds, largest of 6) {max(ses):.4f}; "
          f"SE of a difference {np.sqrt(2) * max(ses):.4f}")


def bench_coverage(n_datasets, n_items=500, n_resamples=1000):
    truth = population_values(POPULATION)
    print(f"\n2. Coverage of 95% intervals: {n_datasets} datasets of {n_items} items, "
          f"{n_resamples} resamples each")
    print("   population cells (tp, fp, fn, tn) = "
          f"{tuple(POPULATION.tolist())}; true "
          + ", ".join(f"{m} {v:.4f}" for m, v in truth.items()))
    rng = np.random.default_rng(2024)
    covered = {name: 0 for name in METRICS}
    widths = {name: 0.0 for name in METRICS}
    start = time.perf_counter()
    for i in range(n_datasets):
        report = binary_report(*sample_dataset(rng, n_items), n_resamples=n_resamples,
                               seed=i)
        for name in METRICS:
            covered[name] += report[f"{name}_low"] <= truth[name] <= report[f"{name}_high"]
            widths[name] += report[f"{name}_high"] - report[f"{name}_low"]
    elapsed = time.perf_counter() - start
    for name in METRICS:
        share = covered[name] / n_datasets
        se = np.sqrt(share * (1 - share) / n_datasets)
        print(f"   {name:<10} coverage {share:.3f} +/- {se:.3f} (binomial SE)   "
              f"mean width {widths[name] / n_datasets:.4f}")
    print(f"   ({elapsed:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and datasets")
    args = parser.parse_args()
    bench_speed(calls=5 if args.quick else 20)
    bench_coverage(n_datasets=400 if args.quick else 2000)


if __name__ == "__main__":
    main()

"""Coverage of score_report's AUROC and AUPRC intervals, by simulation.

    PYTHONPATH=. python medassets_tests/benchmarks/bench_auroc_coverage.py [--datasets 1000] [--quick]

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
"""

import argparse
import time

import numpy as np
from monte_carlo import monte_carlo_se, within
from scipy.special import ndtr, ndtri

from medassets.core.metrics import score_report
from medassets.core.metrics._labels import percentile_interval
from medassets.core.metrics._scores import _bootstrap_weights, _Ranking

SETTINGS = [  # items, prevalence, true AUROC: the four, then harder and smaller ones
    (150, 0.4, 0.8), (150, 0.2, 0.9), (600, 0.4, 0.8), (600, 0.1, 0.7), (60, 0.3, 0.85), (300, 0.1, 0.95),
]
NOMINAL = 0.95


def dataset(rng, n, true_auroc, prevalence):
    y_true = (rng.random(n) < prevalence).astype(int)
    return y_true, ndtr(rng.normal(size=n) + np.sqrt(2) * ndtri(true_auroc) * y_true)


def percentile_auroc(y_true, scores, seed):
    """The percentile interval of score_report's own resamples (same seed: the same draws)."""
    ranking = _Ranking(y_true, scores)
    values = np.concatenate([ranking.auroc_ap(w)[0] for w in _bootstrap_weights(len(y_true), 1000, seed)])
    return percentile_interval(values[~np.isnan(values)], NOMINAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 datasets per setting")
    args = parser.parse_args()
    datasets = 100 if args.quick else args.datasets
    rng = np.random.default_rng(2024)
    se = monte_carlo_se(datasets, NOMINAL)
    print(f"{datasets} datasets per setting, 95% intervals, 1000 resamples; Monte Carlo SE {se:.4f}")
    print("| items | prevalence | AUROC | AUROC (logit DeLong) | AUROC (percentile, before) | AUPRC (percentile) | ms/call |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for n, prevalence, true_auroc in SETTINGS:
        true_ap = np.mean([score_report(*dataset(rng, 20_000, true_auroc, prevalence), n_resamples=1)["auprc"] for _ in range(20)])
        covered = {"auroc": 0, "before": 0, "auprc": 0}
        counted, elapsed = 0, 0.0
        while counted < datasets:
            y_true, scores = dataset(rng, n, true_auroc, prevalence)
            if min(y_true.sum(), n - y_true.sum()) < 2:  # no AUROC interval: drawn again
                continue
            started = time.perf_counter()
            report = score_report(y_true, scores, seed=counted)
            elapsed += time.perf_counter() - started
            low, high = percentile_auroc(y_true, scores, seed=counted)
            covered["auroc"] += report["auroc_low"] <= true_auroc <= report["auroc_high"]
            covered["before"] += low <= true_auroc <= high
            covered["auprc"] += report["auprc_low"] <= true_ap <= report["auprc_high"]
            counted += 1
        cells = [within(covered[name], datasets, NOMINAL) for name in ("auroc", "before", "auprc")]
        print(f"| {n} | {prevalence} | {true_auroc} | {' | '.join(cells)} | {elapsed / datasets * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()

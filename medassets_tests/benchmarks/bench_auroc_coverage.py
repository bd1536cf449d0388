"""Coverage of score_report's AUROC and AUPRC intervals, by simulation.

    python medassets_tests/benchmarks/bench_auroc_coverage.py [--datasets 1000] [--quick]

Binormal scores (negatives N(0, 1), positives N(d, 1), mapped into [0, 1] by the normal
CDF) have a known AUROC, Phi(d / sqrt(2)). For each setting, the share of simulated
datasets whose 95% interval (1000 resamples) covers the true AUROC, with its binomial
standard error, and the time per score_report call. The true average precision is the
mean over many large datasets of their AUPRC, so its coverage line is approximate.
"""

import argparse
import time

import numpy as np
from scipy.special import ndtr, ndtri

from medassets.core.metrics import score_report


def dataset(rng, n, true_auroc, prevalence):
    y_true = (rng.random(n) < prevalence).astype(int)
    return y_true, ndtr(rng.normal(size=n) + np.sqrt(2) * ndtri(true_auroc) * y_true)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 datasets per setting")
    args = parser.parse_args()
    datasets = 100 if args.quick else args.datasets
    rng = np.random.default_rng(2024)
    print(f"{datasets} datasets per setting, 95% percentile intervals of 1000 resamples")
    print(f"{'items':>6} {'prevalence':>10} {'AUROC':>6} {'AUROC coverage':>16} {'AUPRC coverage':>16} {'ms/call':>8}")
    for n, prevalence, true_auroc in [(150, 0.4, 0.8), (150, 0.2, 0.9), (600, 0.4, 0.8), (600, 0.1, 0.7)]:
        true_ap = np.mean([score_report(*dataset(rng, 20_000, true_auroc, prevalence), n_resamples=1)["auprc"] for _ in range(20)])
        covered_auroc = covered_ap = 0
        started = time.perf_counter()
        for k in range(datasets):
            y_true, scores = dataset(rng, n, true_auroc, prevalence)
            report = score_report(y_true, scores, seed=k)
            covered_auroc += report["auroc_low"] <= true_auroc <= report["auroc_high"]
            covered_ap += report["auprc_low"] <= true_ap <= report["auprc_high"]
        per_call = (time.perf_counter() - started) / datasets * 1000
        cells = []
        for covered in (covered_auroc, covered_ap):
            share = covered / datasets
            cells.append(f"{share:.3f} ± {np.sqrt(share * (1 - share) / datasets):.3f}")
        print(f"{n:>6} {prevalence:>10} {true_auroc:>6} {cells[0]:>16} {cells[1]:>16} {per_call:>8.1f}")


if __name__ == "__main__":
    main()

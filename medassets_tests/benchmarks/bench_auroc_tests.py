"""Time of the AUROC work two tests of core/test_score_metrics.py do (their budgets, once
asserted there: a wall clock depends on the machine and its load, so it is measured here).

    PYTHONPATH=. python medassets_tests/benchmarks/bench_auroc_tests.py [--rounds 3]

- DeLong against the paired bootstrap: 60 datasets of 150 items, each DeLong's test and a paired
  AUROC bootstrap of 500 resamples (budget 5 s);
- AUROC interval coverage: for each of its two settings, 1500 datasets of 150 items, each a
  score_report of one resample (its AUROC interval draws none; budget 10 s for both).
Each round prints both times; the datasets are those of the tests (the same seeds).
"""

import argparse
import time

import numpy as np

from medassets.core.metrics import delong, paired_auroc_difference, score_report
from medassets_tests.core.test_score_metrics import binormal_dataset, correlated_scores


def delong_and_bootstrap() -> float:
    rng = np.random.default_rng(8)
    started = time.perf_counter()
    for k in range(60):
        y_true, a, b = correlated_scores(rng, 150, shift=0.8 * (k % 4) / 3)
        delong(y_true, a, b)
        paired_auroc_difference(y_true, a, b, n_resamples=500, seed=k)
    return time.perf_counter() - started


def interval_coverage() -> float:
    started = time.perf_counter()
    for n, prevalence, true_auroc in [(150, 0.4, 0.8), (150, 0.2, 0.9)]:
        rng = np.random.default_rng(12)
        for _ in range(1500):
            score_report(*binormal_dataset(rng, n, true_auroc, prevalence), n_resamples=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}: DeLong and paired bootstrap {delong_and_bootstrap():.2f} s (budget 5 s); "
              f"interval coverage {interval_coverage():.2f} s (budget 10 s)")


if __name__ == "__main__":
    main()

"""Metrics of a model's answers against gold labels, with intervals: pure Python, no Dagster.

- `_labels`: precision, recall and F1 of labels with bootstrap intervals, their paired
  differences, McNemar's test and its sample size;
- `_samples`: metrics of K sampled answers per item (per-sample mean, spread, majority vote)
  and the paired comparison of two sampled models;
- `_scores`: AUROC, average precision, calibration and DeLong's test of scores, and the
  cut-off learned on train rows;
- `_corrections`: adjustments of a family of p-values (Holm, Benjamini-Hochberg, none).

Every public name is imported here: callers use `medassets.core.metrics.<name>`.
"""

from medassets.core.metrics._corrections import CORRECTIONS, benjamini_hochberg, holm, unadjusted
from medassets.core.metrics._labels import (
    CONFIDENCE, INVALID, INVALID_POLICIES, METRICS, N_RESAMPLES, SETTINGS, binary_report, mcnemar,
    mcnemar_detectable_difference, mcnemar_sample_size, paired_difference,
)
from medassets.core.metrics._samples import majority_vote, paired_sampled_difference, sampled_f1
from medassets.core.metrics._scores import (
    ECE_BINS, SCORE_FIELDS, SCORE_METRICS, delong, expected_calibration_error, learn_threshold, paired_auroc_difference,
    pr_points, reliability_bins, roc_points, score_report, scores_row,
)

__all__ = [
    "CONFIDENCE", "CORRECTIONS", "ECE_BINS", "INVALID", "INVALID_POLICIES", "METRICS", "N_RESAMPLES", "SCORE_FIELDS",
    "SCORE_METRICS", "SETTINGS", "benjamini_hochberg", "binary_report", "delong", "expected_calibration_error", "holm",
    "learn_threshold", "majority_vote", "mcnemar", "mcnemar_detectable_difference", "mcnemar_sample_size",
    "paired_auroc_difference", "paired_difference",
    "paired_sampled_difference", "pr_points", "reliability_bins", "roc_points", "sampled_f1", "score_report", "scores_row",
    "unadjusted",
]

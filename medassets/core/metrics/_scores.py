"""Scores (the probability a model gives the positive class): AUROC and average precision
with intervals, Brier score and calibration, ROC and precision-recall curves, DeLong's test
of two models' AUROC, and the cut-off learned on train rows.

AUROC's interval is DeLong's variance on the logit scale with a Student t quantile: the
percentile bootstrap interval it replaces covered 93% at 95% with 30 positive items and
an AUROC of 0.9 (``bench_auroc_coverage.py``). Near 1 the AUROC's sampling distribution is
skewed and bounded, and a high estimate comes with a small estimated variance; the logit
scale removes the bound. The t quantile's degrees of freedom are Satterthwaite's for the
two placement variances DeLong's variance sums, each with its own sampling variance, from
its fourth moment: a few badly ranked positives make the variance itself uncertain, and the
interval wider. (Welch's degrees of freedom, which take the placements for normal, covered
88-92% where the positives were few for how high the AUROC was; these 91-94%.) It still
covers less than 95% there: a sample without a badly ranked positive gives both a high
estimate and a small variance (docs/performance.md).
"""

from __future__ import annotations

import math
from math import erfc, inf, sqrt

import numpy as np
import pandas as pd
from scipy.special import expit, logit, stdtrit

from medassets.core.metrics._labels import CONFIDENCE, N_RESAMPLES, binary_report, check_options, percentile_interval

ECE_BINS = 10
SCORE_METRICS = ("auroc", "auprc")  # the two with intervals
_RESAMPLE_CELLS = 2_000_000  # resample weights held at once (resamples x items)


def score_report(
    y_true, scores, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> dict:
    """Threshold-free metrics of probability scores against gold labels, with intervals.

    ``y_true`` holds 0 and 1; ``scores`` the predicted probability of the positive class,
    finite and in [0, 1].

    Returns a dict with:
      auroc: area under the ROC curve, tied scores counting one half (equal to
        scikit-learn's ``roc_auc_score``);
      auprc: average precision, the precision at each distinct score weighted by the
        recall it adds (equal to scikit-learn's ``average_precision_score``);
      auroc_low, auroc_high: logit(AUROC) plus and minus t times its standard error, mapped
        back: DeLong's variance (see ``delong``) on the logit scale by the delta method,
        se / (AUROC (1 - AUROC)), and t the Student quantile at Satterthwaite's degrees of
        freedom of DeLong's two placement variances, each variance's own sampling variance
        taken from its fourth moment. The percentile bootstrap it replaces covered 93% at 95%
        with 30 positives and an AUROC of 0.9; this one 95%, but 93-94% with 10 positives at
        0.9, 30 at 0.95 or 50 at 0.97 (``bench_auroc_coverage.py``). No resampling:
        ``n_resamples`` and ``seed`` do not change it;
      auprc_low, auprc_high: the percentile interval of ``n_resamples`` seeded item-bootstrap
        resamples;
      brier: the mean squared difference between score and label;
      ece: expected calibration error over ``ece_bins`` equal-width bins (see
        ``reliability_bins``): the sum over bins of (items in the bin / n) times
        |observed positive rate - mean score|;
      n, positives: items and positive items; n_resamples, confidence, seed, ece_bins:
        the settings;
      notes: human-readable strings on degenerate cases.

    AUROC is undefined without both classes, average precision without a positive: such a
    metric is NaN, and so are its bounds; so are AUROC's bounds where DeLong's variance is
    undefined (a class of one item) or 0 (the classes perfectly separated, or every score
    tied): a note says which. A resample drawing no positive is left out of average precision's
    interval, and a note says in how many resamples that happened. With no items, every
    metric is NaN.
    """
    check_options(n_resamples, confidence, "negative")
    truth, scores = _check_scores(y_true, scores, probabilities=True)
    n, positives = len(truth), int(truth.sum())
    report = {"n": n, "positives": positives}
    notes = []
    if n == 0:
        notes.append("no items to score; all metrics reported as NaN")
        report |= {name: np.nan for name in ("auroc", "auroc_low", "auroc_high", "auprc", "auprc_low", "auprc_high", "brier", "ece")}
    else:
        ranking = _Ranking(truth, scores)
        report["auroc"], report["auprc"] = (float(value) for value in ranking.auroc_ap(np.ones((1, n)))[:, 0])
        if 0 < positives < n:
            (report["auroc_low"], report["auroc_high"]), why_none = _auroc_interval(truth, scores, confidence)
            notes += [why_none] if why_none else []
        else:
            report["auroc_low"] = report["auroc_high"] = np.nan
        resampled = np.concatenate([ranking.auroc_ap(weights)[1] for weights in _bootstrap_weights(n, n_resamples, seed)])
        defined = resampled[~np.isnan(resampled)]
        if len(defined):
            report["auprc_low"], report["auprc_high"] = percentile_interval(defined, confidence)
        else:
            report["auprc_low"] = report["auprc_high"] = np.nan
        if positives and len(defined) < n_resamples:
            notes.append(
                f"auprc undefined (no positive drawn) in {n_resamples - len(defined)} of {n_resamples}"
                " resamples, left out of its interval"
            )
        if positives in (0, n):
            notes.append(
                f"only {'positive' if positives else 'negative'} items: AUROC is undefined, reported as NaN"
            )
        if positives == 0:
            notes.append("no positive items: average precision is undefined, reported as NaN")
        report["brier"] = float(np.mean((truth - scores) ** 2))
        report["ece"] = expected_calibration_error(truth, scores)
    report |= {"n_resamples": n_resamples, "confidence": confidence, "seed": seed, "ece_bins": ECE_BINS, "notes": notes}
    return report


def reliability_bins(y_true, scores, bins: int = ECE_BINS) -> pd.DataFrame:
    """Scores grouped in ``bins`` equal-width bins over [0, 1]: bin k holds the scores s with
    k <= bins * s < k + 1, the last bin also s = 1 (so each bin is closed on the left and open
    on the right, except the last, closed on both sides).

    One row per bin, empty bins included: bin_low, bin_high, n (items in the bin), mean_score
    and observed_rate (share of positive items; both NaN in an empty bin). The rows of a
    reliability diagram, and what ``expected_calibration_error`` sums over.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    truth, scores = _check_scores(y_true, scores, probabilities=True)
    index = np.minimum(np.floor(scores * bins).astype(np.int64), bins - 1)
    n = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(index, weights=scores, minlength=bins) / n
        observed_rate = np.bincount(index, weights=truth, minlength=bins) / n
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame({
        "bin_low": edges[:-1], "bin_high": edges[1:], "n": n, "mean_score": mean_score, "observed_rate": observed_rate,
    })


def expected_calibration_error(y_true, scores, bins: int = ECE_BINS) -> float:
    """Sum over the non-empty ``reliability_bins`` of (n_b / n) * |observed rate - mean score|."""
    table = reliability_bins(y_true, scores, bins)
    filled = table[table["n"] > 0]
    if filled.empty:
        return np.nan
    weight = filled["n"] / filled["n"].sum()
    return float((weight * (filled["observed_rate"] - filled["mean_score"]).abs()).sum())


def roc_points(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve's points (false positive rate, true positive rate): from (0, 0), one
    point per distinct score from the highest down (items scoring at least it called
    positive), to (1, 1). The trapezoidal area under them is ``score_report``'s AUROC.
    Raises ValueError unless both classes are present."""
    truth, scores = _check_scores(y_true, scores)
    if truth.sum() in (0, len(truth)):
        raise ValueError("a ROC curve needs both positive and negative items")
    positives, negatives = _Ranking(truth, scores).cumulative_counts()
    return np.r_[0.0, negatives / negatives[-1]], np.r_[0.0, positives / positives[-1]]


def pr_points(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """The precision-recall curve's points (recall, precision): from (0, 1), one point per
    distinct score from the highest down. The sum of each recall step times the precision
    reached there is ``score_report``'s average precision. Raises ValueError without a
    positive item."""
    truth, scores = _check_scores(y_true, scores)
    if truth.sum() == 0:
        raise ValueError("a precision-recall curve needs a positive item")
    positives, negatives = _Ranking(truth, scores).cumulative_counts()
    return np.r_[0.0, positives / positives[-1]], np.r_[1.0, positives / (positives + negatives)]


def delong(y_true, scores_a, scores_b) -> dict:
    """DeLong's test of the difference between the AUROCs of two scores of the same items.

    The fast algorithm: each positive item's placement is the share of negative items it
    outscores (ties count one half), each negative item's the share of positive items
    that outscore it, both from midranks; the variance of AUROC(a) - AUROC(b) is the
    covariance of the placements over positive items divided by their count plus the same
    over negative items. Scores may be any finite numbers.

    Returns a dict with ``auc_a``, ``auc_b``, ``diff`` (auc_a - auc_b), ``se`` (its standard
    error), ``z`` (diff / se) and the two-sided ``p_value`` under the normal approximation;
    when ``se`` is 0 (the same ranking twice), ``z`` is 0 and ``p_value`` 1 if ``diff`` is 0.
    Raises ValueError unless both classes have at least two items.
    """
    truth, scores_a = _check_scores(y_true, scores_a, name="scores_a")
    _, scores_b = _check_scores(y_true, scores_b, name="scores_b")
    m = int(truth.sum())
    n = len(truth) - m
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least two positive and two negative items, got {m} and {n}")
    placements_pos, placements_neg = zip(*(_placements(truth, scores) for scores in (scores_a, scores_b)))
    auc_a, auc_b = (float(p.mean()) for p in placements_pos)
    cov_pos = np.cov(placements_pos)
    cov_neg = np.cov(placements_neg)
    contrast = np.array([1.0, -1.0])
    variance = contrast @ cov_pos @ contrast / m + contrast @ cov_neg @ contrast / n
    diff = auc_a - auc_b
    se = sqrt(max(float(variance), 0.0))
    if se > 0:
        z = diff / se
    else:
        z = 0.0 if diff == 0 else (inf if diff > 0 else -inf)
    return {
        "auc_a": auc_a, "auc_b": auc_b, "diff": diff, "se": se, "z": z,
        "p_value": min(1.0, erfc(abs(z) / sqrt(2))),
    }


def paired_auroc_difference(
    y_true, scores_a, scores_b, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> dict:
    """AUROC(a) - AUROC(b) on the same items, with a paired bootstrap: each resample weighs
    both models' items alike. A resample drawing one class only is left out of the interval.

    Returns a dict with ``diff``, ``low`` and ``high`` (the percentile interval), ``a`` and
    ``b`` (each model's AUROC), ``n``, the settings, and ``notes``. Scores may be any finite
    numbers. Raises ValueError unless both classes are present.
    """
    check_options(n_resamples, confidence, "negative")
    truth, scores_a = _check_scores(y_true, scores_a, name="scores_a")
    _, scores_b = _check_scores(y_true, scores_b, name="scores_b")
    n = len(truth)
    if truth.sum() in (0, n):
        raise ValueError("an AUROC difference needs both positive and negative items")
    ranking_a, ranking_b = _Ranking(truth, scores_a), _Ranking(truth, scores_b)
    value_a = float(ranking_a.auroc_ap(np.ones((1, n)))[0, 0])
    value_b = float(ranking_b.auroc_ap(np.ones((1, n)))[0, 0])
    diffs = np.concatenate([
        ranking_a.auroc_ap(weights)[0] - ranking_b.auroc_ap(weights)[0]
        for weights in _bootstrap_weights(n, n_resamples, seed)
    ])
    defined = diffs[~np.isnan(diffs)]
    low, high = percentile_interval(defined, confidence) if len(defined) else (np.nan, np.nan)
    notes = []
    if len(defined) < n_resamples:
        notes.append(
            f"AUROC undefined (one class only) in {n_resamples - len(defined)} of {n_resamples} resamples,"
            " left out of the interval"
        )
    return {
        "diff": value_a - value_b, "low": low, "high": high, "a": value_a, "b": value_b, "n": n,
        "n_resamples": n_resamples, "confidence": confidence, "seed": seed, "notes": notes,
    }


SCORE_FIELDS = (
    "auroc", "auroc_low", "auroc_high", "auprc", "auprc_low", "auprc_high", "brier", "ece",
    "learned_threshold", "threshold_precision", "threshold_recall", "threshold_f1", "threshold_f1_low", "threshold_f1_high",
)


def scores_row(y_true, scores, learned_threshold: float, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> dict:
    """`score_report`'s figures, and precision, recall and F1 (with its interval) of calling
    positive the items scoring at least `learned_threshold` (a cut-off learned on train rows);
    every field NaN where an item has no score (a model that gives none), the cut-off's where
    none was learned."""
    row = dict.fromkeys(SCORE_FIELDS, math.nan)
    scores = np.asarray(scores, dtype=float)
    if not len(scores) or np.isnan(scores).any():
        return row
    report = score_report(y_true, scores, n_resamples=n_resamples, confidence=confidence, seed=seed)
    row |= {field: report[field] for field in SCORE_FIELDS[:8]}
    if not math.isnan(learned_threshold):
        at_threshold = binary_report(y_true, (scores >= learned_threshold).astype(int), n_resamples=n_resamples, confidence=confidence, seed=seed)
        row |= {"learned_threshold": learned_threshold, "threshold_precision": at_threshold["precision"],
                "threshold_recall": at_threshold["recall"], "threshold_f1": at_threshold["f1"],
                "threshold_f1_low": at_threshold["f1_low"], "threshold_f1_high": at_threshold["f1_high"]}
    return row


def learn_threshold(y_true, scores) -> float:
    """The cut-off t maximizing the F1 of the positive class when items scoring at least t are
    called positive, over the distinct scores of the rows given; of several cut-offs with
    the same F1, the highest. Pass the train rows only: the cut-off is then applied to test
    rows that played no part in choosing it. Raises ValueError without a positive row (F1 is
    0 at every cut-off)."""
    truth, scores = _check_scores(y_true, scores)
    if truth.sum() == 0:
        raise ValueError("learning a threshold needs at least one positive row: F1 is 0 at every cut-off")
    ranking = _Ranking(truth, scores)
    true_pos, false_pos = ranking.cumulative_counts()
    f1 = 2 * true_pos / (true_pos + true_pos[-1] + false_pos)  # 2TP / (2TP + FP + FN)
    return float(ranking.distinct_scores[np.argmax(f1)])  # the first maximum: the highest cut-off


class _Ranking:
    """Items sorted once by score, highest first, in groups of tied scores: AUROC and average
    precision of any item weights (one row of weights per resample) from per-group sums."""

    def __init__(self, truth: np.ndarray, scores: np.ndarray):
        self.order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[self.order]
        self.truth = truth[self.order].astype(float)
        self.starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        self.distinct_scores = sorted_scores[self.starts]

    def cumulative_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative items scoring at least each distinct score."""
        positives = np.add.reduceat(self.truth, self.starts)
        negatives = np.diff(np.r_[self.starts, len(self.truth)]) - positives
        return np.cumsum(positives), np.cumsum(negatives)

    def auroc_ap(self, weights: np.ndarray) -> np.ndarray:
        """Rows AUROC and average precision, one column per row of `weights` (items in input
        order); NaN where the weights leave a class empty (average precision: no positive)."""
        weighted = weights[:, self.order]
        positives = np.add.reduceat(weighted * self.truth, self.starts, axis=1)
        negatives = np.add.reduceat(weighted, self.starts, axis=1) - positives
        cum_pos, cum_neg = np.cumsum(positives, axis=1), np.cumsum(negatives, axis=1)
        total_pos, total_neg = cum_pos[:, -1], cum_neg[:, -1]
        # Each positive outscores the negatives of lower groups and ties half of its own group's.
        outscored = positives * (total_neg[:, None] - cum_neg + 0.5 * negatives)
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = outscored.sum(axis=1) / (total_pos * total_neg)
            precision = np.divide(cum_pos, cum_pos + cum_neg, out=np.zeros_like(cum_pos), where=cum_pos > 0)
            ap = (positives * precision).sum(axis=1) / total_pos
        auroc[(total_pos == 0) | (total_neg == 0)] = np.nan
        ap[total_pos == 0] = np.nan
        return np.vstack([auroc, ap])


def _bootstrap_weights(n: int, n_resamples: int, seed: int):
    """Item-bootstrap resamples as weights: row r counts how often each of the n items was
    drawn in resample r (n draws with replacement). Yielded in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _RESAMPLE_CELLS // n)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        drawn = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        yield np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n).astype(float)


def _placements(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placements, from midranks: each positive item's share of the negative items
    it outscores, each negative item's share of the positive items that outscore it (ties
    count one half). Both average to the AUROC."""
    is_positive = truth == 1
    m, n = int(is_positive.sum()), int((~is_positive).sum())
    rank_all = _midranks(scores)
    positive = (rank_all[is_positive] - _midranks(scores[is_positive])) / n
    negative = 1 - (rank_all[~is_positive] - _midranks(scores[~is_positive])) / m
    return positive, negative


def _auroc_interval(truth: np.ndarray, scores: np.ndarray, confidence: float) -> tuple[tuple[float, float], str | None]:
    """AUROC's interval (see ``score_report``) for labels of both classes, or NaN bounds and the
    reason there is none."""
    positive, negative = _placements(truth, scores)
    m, n = len(positive), len(negative)
    if m < 2 or n < 2:
        return (np.nan, np.nan), f"AUROC's interval needs two items of each class, got {m} positive and {n} negative"
    auroc = float(positive.mean())
    share_pos, share_neg = positive.var(ddof=1) / m, negative.var(ddof=1) / n  # DeLong's variance, summed
    if share_pos + share_neg == 0:
        return (np.nan, np.nan), (
            f"AUROC {auroc:g} with a DeLong variance of 0 (classes perfectly separated, or every score tied): no interval"
        )
    degrees = 2 * (share_pos + share_neg) ** 2 / (_variance_of_variance(positive) / m**2 + _variance_of_variance(negative) / n**2)
    half_width = stdtrit(degrees, (1 + confidence) / 2) * sqrt(share_pos + share_neg) / (auroc * (1 - auroc))
    return (float(expit(logit(auroc) - half_width)), float(expit(logit(auroc) + half_width))), None


def _variance_of_variance(values: np.ndarray) -> float:
    """The sampling variance of the sample variance s^2 of `values`, from their fourth central
    moment: (m4 - (k - 3) / (k - 1) s^4) / k for k values (2 s^4 / (k - 1) for normal ones)."""
    k, s2 = len(values), values.var(ddof=1)
    return float((((values - values.mean()) ** 4).mean() - (k - 3) / (k - 1) * s2**2) / k)


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2)[inverse]


def _check_scores(y_true, scores, *, name: str = "scores", probabilities: bool = False):
    """Return labels as int64 and scores as float64 arrays, or raise ValueError naming the problem."""
    try:
        truth = np.asarray(y_true, dtype=float)
        values = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"labels and {name} must be numeric: {err}") from None
    if truth.ndim != 1 or values.ndim != 1:
        raise ValueError(f"y_true and {name} must be one-dimensional")
    if len(truth) != len(values):
        raise ValueError(f"y_true and {name} differ in length: {len(truth)} != {len(values)}")
    if not np.isin(truth, (0, 1)).all():
        bad = np.unique(truth[~np.isin(truth, (0, 1))])[:5]
        raise ValueError(f"y_true must hold only 0 and 1, found {bad.tolist()}")
    if not np.isfinite(values).all():
        where = np.flatnonzero(~np.isfinite(values))[:5]
        raise ValueError(f"{name} must be finite, found {values[where].tolist()} at positions {where.tolist()}")
    if probabilities and ((values < 0) | (values > 1)).any():
        where = np.flatnonzero((values < 0) | (values > 1))[:5]
        raise ValueError(f"{name} must lie in [0, 1], found {values[where].tolist()} at positions {where.tolist()}")
    return truth.astype(np.int64), values

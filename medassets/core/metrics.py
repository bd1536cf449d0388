"""Precision, recall and F1 of the positive class, with bootstrap confidence intervals;
and, for scores, AUROC, AUPRC, Brier score and calibration, DeLong's test and a learned threshold.

Point estimates equal scikit-learn's ``precision_score``, ``recall_score`` and
``f1_score`` (``pos_label=1, zero_division=0``). A metric whose denominator is zero
(0/0) is reported as 0.0, in the point estimate and in every bootstrap resample alike.

The bootstrap is the ordinary item bootstrap with percentile intervals. Because the
three metrics depend only on the counts of the confusion cells, resampling n items
with replacement is the same as one multinomial draw of n over the cells with the
observed cell shares as probabilities. Drawing the cell counts directly gives the
same distribution at a cost independent of the number of items.
"""

from __future__ import annotations

import math
from fractions import Fraction
from math import comb, erfc, inf, isfinite, sqrt

import numpy as np
import pandas as pd

INVALID_POLICIES = ("negative", "exclude")
N_RESAMPLES = 1000  # the paper's
CONFIDENCE = 0.95
METRICS = ("precision", "recall", "f1")
SETTINGS = ("confidence", "invalid_policy", "n_resamples")  # recorded beside the numbers they produced
INVALID = -1  # code of an invalid prediction after normalization


def binary_report(
    y_true,
    y_pred,
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    invalid: str = "negative",
) -> dict:
    """Score binary predictions against gold labels, with bootstrap intervals.

    ``y_true`` holds 0 and 1. ``y_pred`` holds 1, 0, and -1, None or NaN for an
    invalid answer. ``invalid="negative"`` scores an invalid answer as a negative
    prediction; ``invalid="exclude"`` drops those items.

    Returns a dict with:
      n, tp, fp, fn, tn: items scored (after the invalid policy) and their cells;
      invalid, invalid_rate: invalid answers in the input and their share of it;
      precision, recall, f1, each with ``_low`` and ``_high``: point estimates and
        the percentile interval of ``n_resamples`` seeded bootstrap resamples;
      confusion: the input's counts before the invalid policy, as nested lists, rows
        true label (1, 0) by columns predicted (positive, negative, invalid);
      invalid_policy, n_resamples, confidence, seed: the settings;
      notes: human-readable strings on degenerate cases: a metric undefined on the
        data, or in some resamples; no items left to score; all answers invalid.
    """
    _check_options(n_resamples, confidence, invalid)
    truth, pred = _check_inputs(y_true, y_pred)
    n_input = len(pred)
    is_invalid = pred == INVALID
    n_invalid = int(is_invalid.sum())
    confusion = [
        [int(np.sum((truth == t) & (pred == p))) for p in (1, 0, INVALID)]
        for t in (1, 0)
    ]
    truth, pred = _apply_invalid_policy(truth, pred, is_invalid, invalid)

    # Cell order: tp, fp, fn, tn.
    counts = np.bincount(_cell_codes(truth, pred), minlength=4)
    n = int(counts.sum())
    tp, fp, fn, tn = (int(c) for c in counts)
    report = {"n": n, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "invalid": n_invalid}

    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_resamples) if n else None
    for name in METRICS:
        report[name] = float(_metric(name, tp, fp, fn))
        if draws is None:  # nothing to resample
            report[f"{name}_low"] = report[f"{name}_high"] = 0.0
        else:
            values = _metric(name, draws[:, 0], draws[:, 1], draws[:, 2])
            report[f"{name}_low"], report[f"{name}_high"] = _percentile_interval(
                values, confidence
            )

    report.update(
        invalid_rate=n_invalid / n_input if n_input else 0.0,
        invalid_policy=invalid,
        confusion=confusion,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        notes=_degenerate_notes(n_input, n_invalid, n, tp, fp, fn, invalid),
    )
    if draws is not None:
        report["notes"] += _resample_notes(draws)
    return report


def paired_difference(
    y_true,
    pred_a,
    pred_b,
    *,
    metric: str = "f1",
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    invalid: str = "negative",
) -> dict:
    """Difference metric(a) - metric(b) on the same items, with a paired bootstrap.

    Both models are scored on the same resampled items: a resample is one
    multinomial draw over the 8 joint cells (true label x a's prediction x b's
    prediction). ``invalid="negative"`` scores invalid answers as negative;
    ``invalid="exclude"`` drops an item invalid for either model.

    Returns a dict with ``diff`` (on the full data), ``low`` and ``high`` (the
    percentile interval), ``metric``, ``n`` (items scored), ``a`` and ``b`` (each
    model's point value), and the settings.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    _check_options(n_resamples, confidence, invalid)
    truth, pred_a = _check_inputs(y_true, pred_a)
    _, pred_b = _check_inputs(y_true, pred_b)
    if invalid == "exclude":
        keep = (pred_a != INVALID) & (pred_b != INVALID)
        truth, pred_a, pred_b = truth[keep], pred_a[keep], pred_b[keep]
    pred_a = (pred_a == 1).astype(np.int64)
    pred_b = (pred_b == 1).astype(np.int64)

    # Joint cell code: 4 * true label + 2 * a's prediction + b's prediction.
    counts = np.bincount(4 * truth + 2 * pred_a + pred_b, minlength=8)
    n = int(counts.sum())
    value_a = float(_metric(metric, *_model_cells(counts, "a")))
    value_b = float(_metric(metric, *_model_cells(counts, "b")))
    if n:
        draws = np.random.default_rng(seed).multinomial(
            n, counts / n, size=n_resamples
        )
        diffs = _metric(metric, *_model_cells(draws, "a")) - _metric(
            metric, *_model_cells(draws, "b")
        )
        low, high = _percentile_interval(diffs, confidence)
    else:
        low = high = 0.0
    return {
        "diff": value_a - value_b,
        "low": low,
        "high": high,
        "metric": metric,
        "n": n,
        "a": value_a,
        "b": value_b,
        "invalid_policy": invalid,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }


def mcnemar(y_true, pred_a, pred_b, *, invalid: str = "negative") -> dict:
    """McNemar's exact test of two models on the same items (two-sided, on the discordant pairs).

    ``b`` counts the items only model a gets right, ``c`` those only model b gets right.
    Under the null hypothesis each discordant item is a's or b's with probability 1/2, so
    ``p_value`` is twice the smaller binomial tail of Bin(b + c, 1/2), at most 1 (1 when
    there are no discordant items). Invalid answers are scored as in ``binary_report``:
    ``negative`` counts them as negative predictions; ``exclude`` drops an item invalid
    for either model.
    """
    _check_options(1, CONFIDENCE, invalid)
    truth, pred_a = _check_inputs(y_true, pred_a)
    _, pred_b = _check_inputs(y_true, pred_b)
    if invalid == "exclude":
        keep = (pred_a != INVALID) & (pred_b != INVALID)
        truth, pred_a, pred_b = truth[keep], pred_a[keep], pred_b[keep]
    right_a = np.where(pred_a == INVALID, 0, pred_a) == truth
    right_b = np.where(pred_b == INVALID, 0, pred_b) == truth
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = b + c
    # Exact arithmetic: float tails of large n underflow; n is the discordant count only.
    tail = Fraction(sum(comb(n, k) for k in range(min(b, c) + 1)), 2**n)
    return {"b": b, "c": c, "n": int(len(truth)), "p_value": float(min(Fraction(1), 2 * tail)), "invalid_policy": invalid}


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment (family-wise error rate), in input order."""
    p = _check_p_values(p_values)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else p
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def benjamini_hochberg(p_values) -> list[float]:
    """Benjamini-Hochberg adjustment (false discovery rate), in input order."""
    p = _check_p_values(p_values)
    order = np.argsort(p, kind="stable")
    m = len(p)
    scaled = m / np.arange(1, m + 1) * p[order]
    stepped = np.minimum.accumulate(scaled[::-1])[::-1] if m else p
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def unadjusted(p_values) -> list[float]:
    """The p-values as they are (no correction), checked like the others."""
    return _check_p_values(p_values).tolist()


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": unadjusted}


def _check_p_values(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    return p


def _check_options(n_resamples, confidence, invalid) -> None:
    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be one of {INVALID_POLICIES}, got {invalid!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise ValueError(f"n_resamples must be an integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def _check_inputs(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and predictions as int64 arrays; invalid predictions become -1."""
    try:
        truth = np.asarray(y_true, dtype=float)
        pred = np.asarray(y_pred, dtype=float)  # None becomes NaN
    except (TypeError, ValueError) as err:
        raise ValueError(f"labels and predictions must be numeric: {err}") from None
    if truth.ndim != 1 or pred.ndim != 1:
        raise ValueError("y_true and y_pred must be one-dimensional")
    if len(truth) != len(pred):
        raise ValueError(
            f"y_true and y_pred differ in length: {len(truth)} != {len(pred)}"
        )
    if not np.isin(truth, (0, 1)).all():
        bad = np.unique(truth[~np.isin(truth, (0, 1))])[:5]
        raise ValueError(f"y_true must hold only 0 and 1, found {bad.tolist()}")
    pred = np.where(np.isnan(pred), INVALID, pred)
    if not np.isin(pred, (1, 0, INVALID)).all():
        bad = np.unique(pred[~np.isin(pred, (1, 0, INVALID))])[:5]
        raise ValueError(
            f"y_pred must hold 1, 0, or -1/None/NaN for invalid, found {bad.tolist()}"
        )
    return truth.astype(np.int64), pred.astype(np.int64)


def _apply_invalid_policy(truth, pred, is_invalid, policy):
    if policy == "exclude":
        return truth[~is_invalid], pred[~is_invalid]
    return truth, np.where(is_invalid, 0, pred)


def _cell_codes(truth, pred) -> np.ndarray:
    """Code each item by its cell: 0 tp, 1 fp, 2 fn, 3 tn."""
    return 2 * (1 - pred) + (1 - truth)


def _model_cells(counts, model):
    """tp, fp, fn of model "a" or "b" from joint-cell counts (last axis of 8)."""
    cube = counts.reshape(counts.shape[:-1] + (2, 2, 2))  # true x a x b
    if model == "b":
        cube = cube.swapaxes(-1, -2)
    cube = cube.sum(axis=-1)  # true x model
    return cube[..., 1, 1], cube[..., 0, 1], cube[..., 1, 0]


def _metric(name, tp, fp, fn):
    """Precision, recall or F1 from cell counts (arrays broadcast); 0/0 gives 0.0."""
    if name == "precision":
        num, den = tp, tp + fp
    elif name == "recall":
        num, den = tp, tp + fn
    else:
        num, den = 2 * tp, 2 * tp + fp + fn
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def _percentile_interval(values, confidence) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _degenerate_notes(n_input, n_invalid, n, tp, fp, fn, policy) -> list[str]:
    notes = []
    if n_input and n_invalid == n_input:
        notes.append(f"all {n_input} answers are invalid (policy {policy!r})")
    if n == 0:
        notes.append("no items to score; all metrics and intervals reported as 0.0")
        return notes
    if tp + fp == 0:
        notes.append(
            "no positive predictions: precision is undefined (0/0), reported as 0.0"
            " (zero_division=0)"
        )
    if tp + fn == 0:
        notes.append(
            "no positive items: recall is undefined (0/0), reported as 0.0"
            " (zero_division=0)"
        )
    if tp + fp + fn == 0:
        notes.append(
            "no positive items nor predictions: F1 is undefined (0/0), reported as 0.0"
        )
    return notes


def _resample_notes(draws) -> list[str]:
    """Say how many resamples had an undefined metric (counted as 0.0 there)."""
    tp, fp, fn = draws[:, 0], draws[:, 1], draws[:, 2]
    undefined = {
        "precision": tp + fp == 0,
        "recall": tp + fn == 0,
        "f1": tp + fp + fn == 0,
    }
    return [
        f"{name} undefined (0/0) in {share:.1%} of resamples, counted as 0.0 there"
        for name, mask in undefined.items()
        if 0 < (share := mask.mean()) < 1
    ]


# Scores: threshold-free metrics, calibration, DeLong's test, a learned threshold.

ECE_BINS = 10
SCORE_METRICS = ("auroc", "auprc")  # the two with bootstrap intervals
_RESAMPLE_CELLS = 2_000_000  # resample weights held at once (resamples x items)


def score_report(
    y_true, scores, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> dict:
    """Threshold-free metrics of probability scores against gold labels, with bootstrap intervals.

    ``y_true`` holds 0 and 1; ``scores`` the predicted probability of the positive class,
    finite and in [0, 1].

    Returns a dict with:
      auroc: area under the ROC curve, tied scores counting one half (equal to
        scikit-learn's ``roc_auc_score``);
      auprc: average precision, the precision at each distinct score weighted by the
        recall it adds (equal to scikit-learn's ``average_precision_score``);
      auroc_low, auroc_high, auprc_low, auprc_high: the percentile interval of
        ``n_resamples`` seeded item-bootstrap resamples;
      brier: the mean squared difference between score and label;
      ece: expected calibration error over ``ece_bins`` equal-width bins (see
        ``reliability_bins``): the sum over bins of (items in the bin / n) times
        |observed positive rate - mean score|;
      n, positives: items and positive items; n_resamples, confidence, seed, ece_bins:
        the settings;
      notes: human-readable strings on degenerate cases.

    AUROC is undefined without both classes, average precision without a positive: such a
    metric is NaN, and so are its bounds. A resample drawing one class only is left out of
    that metric's interval, and a note says in how many resamples that happened. With no
    items, every metric is NaN.
    """
    _check_options(n_resamples, confidence, "negative")
    truth, scores = _check_scores(y_true, scores, probabilities=True)
    n, positives = len(truth), int(truth.sum())
    report = {"n": n, "positives": positives}
    notes = []
    if n == 0:
        notes.append("no items to score; all metrics reported as NaN")
        report |= {name: np.nan for name in ("auroc", "auroc_low", "auroc_high", "auprc", "auprc_low", "auprc_high", "brier", "ece")}
    else:
        ranking = _Ranking(truth, scores)
        point = ranking.auroc_ap(np.ones((1, n)))
        resampled = np.concatenate(
            [ranking.auroc_ap(weights) for weights in _bootstrap_weights(n, n_resamples, seed)], axis=1
        )
        for k, name in enumerate(SCORE_METRICS):
            report[name] = float(point[k, 0])
            defined = resampled[k][~np.isnan(resampled[k])]
            if len(defined):
                report[f"{name}_low"], report[f"{name}_high"] = _percentile_interval(defined, confidence)
            else:
                report[f"{name}_low"] = report[f"{name}_high"] = np.nan
            if isfinite(report[name]) and len(defined) < n_resamples:
                notes.append(
                    f"{name} undefined (one class only) in {n_resamples - len(defined)} of {n_resamples}"
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
    is_positive = truth == 1
    placements_pos, placements_neg = [], []
    for scores in (scores_a, scores_b):
        rank_all = _midranks(scores)
        rank_pos = _midranks(scores[is_positive])
        rank_neg = _midranks(scores[~is_positive])
        placements_pos.append((rank_all[is_positive] - rank_pos) / n)
        placements_neg.append(1 - (rank_all[~is_positive] - rank_neg) / m)
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
    _check_options(n_resamples, confidence, "negative")
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
    low, high = _percentile_interval(defined, confidence) if len(defined) else (np.nan, np.nan)
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

"""Precision, recall and F1 of the positive class, with bootstrap confidence intervals, and
McNemar's test of two models' labels on the same items.

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

from fractions import Fraction
from math import ceil, comb, inf, sqrt
from statistics import NormalDist

import numpy as np


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
    check_options(n_resamples, confidence, invalid)
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
            report[f"{name}_low"], report[f"{name}_high"] = percentile_interval(
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
    check_options(n_resamples, confidence, invalid)
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
        low, high = percentile_interval(diffs, confidence)
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
    check_options(1, CONFIDENCE, invalid)
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


def mcnemar_sample_size(p10: float, p01: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Items McNemar's test needs to detect, two-sided at level ``alpha`` with probability
    ``power``, the difference between two models whose discordant shares are ``p10`` (only
    model a right) and ``p01`` (only model b right): Connor (1987), with psi = p10 + p01 and
    delta = p10 - p01,

        n = ceil((z(1 - alpha / 2) sqrt(psi) + z(power) sqrt(psi - delta^2))^2 / delta^2),

    z the standard normal quantile. The formula is that of the normal-approximation test;
    the exact test (``mcnemar``) is conservative and had a power of about 0.75 at this n in
    simulations at power 0.8 (``test_metrics.py``). Raises ValueError for shares outside
    [0, 1] or summing above 1, and for p10 = p01 (no difference: no finite n detects it).
    """
    a, b = _normal_quantiles(alpha, power)
    for name, share in (("p10", p10), ("p01", p01)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be a share in [0, 1], got {share!r}")
    if p10 + p01 > 1:
        raise ValueError(f"p10 + p01 must be at most 1 (they are shares of the same items), got {p10 + p01!r}")
    if p10 == p01:
        raise ValueError(f"p10 = p01 = {p10!r}: the models do not differ, and no finite number of items detects that")
    psi, delta = p10 + p01, p10 - p01
    return ceil((a * sqrt(psi) + b * sqrt(psi - delta**2)) ** 2 / delta**2)


def mcnemar_detectable_difference(discordance: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |p10 - p01| that McNemar's test detects, two-sided at level ``alpha`` with
    probability ``power``, on ``n`` items of which a share ``discordance`` (psi = p10 + p01)
    is discordant: Connor's formula (see ``mcnemar_sample_size``) solved for delta.

    With s = sqrt(psi - delta^2), n delta^2 = (a sqrt(psi) + b s)^2 (a = z(1 - alpha / 2),
    b = z(power)) is the quadratic (n + b^2) s^2 + 2 a b sqrt(psi) s + (a^2 - n) psi = 0, whose
    root s = sqrt(psi) (sqrt(n (n - a^2 + b^2)) - a b) / (n + b^2) gives delta. A difference is
    at most psi (every discordant item one model's): ``math.inf`` where none up to psi reaches
    that power (too few items, or too little discordance).
    """
    a, b = _normal_quantiles(alpha, power)
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance must be a share in [0, 1], got {discordance!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    radicand = n * (n - a**2 + b**2)
    if discordance == 0 or radicand < 0:
        return inf
    s = sqrt(discordance) * (sqrt(radicand) - a * b) / (n + b**2)
    delta = sqrt(discordance - s**2) if s >= 0 else inf
    return delta if delta <= discordance else inf


def _normal_quantiles(alpha, power) -> tuple[float, float]:
    """z(1 - alpha / 2) and z(power), after checking both lie in (0, 1)."""
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)



def check_options(n_resamples, confidence, invalid) -> None:
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


def percentile_interval(values, confidence) -> tuple[float, float]:
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

"""Metrics of K sampled answers per item: per-sample precision, recall and F1, their mean
with a bootstrap interval, the run-to-run spread, the majority vote, and a paired comparison
of two sampled models.

An invalid sample (-1, None or NaN) counts as a negative answer, as ``binary_report``'s
default policy.

The intervals resample items with replacement, each drawn item bringing all its K samples
as they are: a cluster bootstrap, with the item as the cluster. It covers the value the
model's sampling would give on the population of items: a new draw of items also brings
new samples of them, and an item's K observed samples already carry that noise. Resampling
the K samples again within each drawn item (a two-level bootstrap) counts the sampling noise
twice (Davison and Hinkley 1997, section 3.8) and gives intervals wider than their level:
``bench_sampled_coverage.py`` measures both. Like ``binary_report``'s, the percentile
interval covers less than its level with few positive items (92% at 50 items, 15 positive).
"""

from __future__ import annotations

import numpy as np

from medassets.core.metrics._labels import CONFIDENCE, INVALID, METRICS, N_RESAMPLES, _metric, check_options, percentile_interval
from medassets.core.metrics._scores import _bootstrap_weights


def majority_vote(labels) -> np.ndarray:
    """The per-item majority vote of an items x K array of sampled labels (1, 0, or -1/None/NaN
    for invalid, counted as 0): 1 where more than half of the item's K samples are 1, else 0
    (a tie is negative)."""
    positive = _check_labels(labels) == 1
    return (2 * positive.sum(axis=1) > positive.shape[1]).astype(np.int64)


def sampled_f1(
    y_true, labels, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> dict:
    """Precision, recall and F1 of K sampled answers per item against gold labels.

    ``y_true`` holds n labels 0 and 1; ``labels`` is an n x K array of the K samples' labels,
    1, 0, or -1/None/NaN for an invalid answer (counted as negative).

    Returns a dict with, for each metric in precision, recall and f1:
      ``<metric>_mean``: the mean over the K samples of each sample's metric (a sample is one
        column, scored as ``binary_report`` scores one run; 0/0 counts as 0.0);
      ``<metric>_low``, ``<metric>_high``: the percentile interval of that mean over
        ``n_resamples`` seeded resamples of the items (with replacement), each drawn item
        with its K samples as they are. Not a two-level bootstrap that also resamples each
        drawn item's samples: those samples already carry the model's sampling noise, and
        drawing them again counts it twice (its 95% intervals covered 97% in
        ``bench_sampled_coverage.py``, this one 95%, at 100 and 400 items of 4 samples);
      ``<metric>_run_sd``: the sample standard deviation (ddof=1) of the K per-sample values,
        the run-to-run spread (NaN when K = 1);
      ``<metric>_majority``: the metric of the per-item majority vote (``majority_vote``);
      ``<metric>_per_sample``: the K per-sample values, in column order;
    and ``n`` (items), ``k`` (samples per item), ``invalid`` (invalid sample labels) and
    ``invalid_rate`` (their share of the n x K), the settings ``n_resamples``, ``confidence``,
    ``seed`` and ``invalid_policy`` ("negative"), and ``notes`` on degenerate cases.
    """
    check_options(n_resamples, confidence, "negative")
    labels = _check_labels(labels)
    truth = _check_truth(y_true, len(labels))
    n, k = labels.shape
    n_invalid = int((labels == INVALID).sum())
    # Per item: its K true-positive indicators, its K positive calls and its label. Summed over
    # items (with bootstrap weights) they give each column's tp, tp + fp and tp + fn.
    called = (labels == 1).astype(float)
    per_item = np.hstack([called * truth[:, None], called, truth[:, None].astype(float)])
    cells = _cells(per_item.sum(axis=0)[None, :], k)
    vote = majority_vote(labels)
    vote_cells = (np.sum(vote & truth), np.sum(vote & (1 - truth)), np.sum((1 - vote) & truth))
    if n:
        resampled = [_cells(weights @ per_item, k) for weights in _bootstrap_weights(n, n_resamples, seed)]
    report = {"n": n, "k": k, "invalid": n_invalid, "invalid_rate": n_invalid / labels.size if labels.size else 0.0}
    for name in METRICS:
        per_sample = _metric(name, *cells)[0]
        report[f"{name}_mean"] = float(per_sample.mean())
        if n:
            means = np.concatenate([_metric(name, *chunk).mean(axis=1) for chunk in resampled])
            report[f"{name}_low"], report[f"{name}_high"] = percentile_interval(means, confidence)
        else:
            report[f"{name}_low"] = report[f"{name}_high"] = 0.0
        report[f"{name}_run_sd"] = float(per_sample.std(ddof=1)) if k > 1 else np.nan
        report[f"{name}_majority"] = float(_metric(name, *vote_cells))
        report[f"{name}_per_sample"] = per_sample.tolist()
    notes = []
    if n == 0:
        notes.append("no items to score; all metrics and intervals reported as 0.0")
    elif truth.sum() == 0:
        notes.append("no positive items: recall and F1 are undefined (0/0), reported as 0.0")
    if k == 1:
        notes.append("one sample per item: the run-to-run spread is undefined (NaN)")
    report |= {
        "n_resamples": n_resamples, "confidence": confidence, "seed": seed, "invalid_policy": "negative",
        "notes": notes,
    }
    return report


def paired_sampled_difference(
    y_true, labels_a, labels_b, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> dict:
    """Mean accuracy of sampled model a minus that of sampled model b on the same items.

    ``labels_a`` (n x K_a) and ``labels_b`` (n x K_b) hold each model's sampled labels as in
    ``sampled_f1`` (an invalid sample counts as negative). An item's correctness for a model
    is the share of its samples equal to the gold label; a model's accuracy is the mean of
    that over items, and d, an item's correctness under a minus under b, averages to ``diff``.

    ``low`` and ``high``: the percentile interval of a paired item bootstrap, the same items
    drawn for both models, each with its samples (see the module's docstring). ``p_value``:
    two-sided, from a paired sign-flip permutation test of the per-item differences d. Under
    the null hypothesis that the two models are exchangeable on every item, d is as likely as
    -d, so the observed |sum of d| is compared with the sums of d under random signs
    (``n_resamples`` seeded draws, p = (1 + draws at least as extreme) / (1 + n_resamples), a
    valid p-value at any number of draws). The test makes no normal approximation and needs
    no variance estimate; with one sample per model it is McNemar's exact test, computed by
    Monte Carlo.

    Returns a dict with ``diff``, ``low``, ``high``, ``p_value``, ``a`` and ``b`` (each
    model's mean accuracy), ``n``, ``k_a``, ``k_b`` and the settings.
    """
    check_options(n_resamples, confidence, "negative")
    labels_a = _check_labels(labels_a, name="labels_a")
    labels_b = _check_labels(labels_b, name="labels_b")
    if len(labels_a) != len(labels_b):
        raise ValueError(f"labels_a and labels_b differ in items: {len(labels_a)} != {len(labels_b)}")
    truth = _check_truth(y_true, len(labels_a))
    n, k_a, k_b = len(truth), labels_a.shape[1], labels_b.shape[1]
    if n == 0:
        raise ValueError("a paired difference needs at least one item")
    correct_a = ((labels_a == 1) == (truth[:, None] == 1)).sum(axis=1)
    correct_b = ((labels_b == 1) == (truth[:, None] == 1)).sum(axis=1)
    # d in integers: k_a * k_b * d. Items matter only through it, so a bootstrap resample is
    # one multinomial draw over its distinct values, and a sign flip of the m items sharing
    # a value |v| adds |v| * (2 * Binomial(m, 1/2) - m).
    scaled = correct_a * k_b - correct_b * k_a
    scale = n * k_a * k_b
    values, counts = np.unique(scaled, return_counts=True)
    rng = np.random.default_rng(seed)
    diffs = rng.multinomial(n, counts / n, size=n_resamples) @ values / scale
    low, high = percentile_interval(diffs, confidence)
    sizes, size_counts = np.unique(np.abs(scaled[scaled != 0]), return_counts=True)
    flips = 2 * rng.binomial(size_counts, 0.5, size=(n_resamples, len(sizes))) - size_counts
    extreme = np.sum(np.abs(flips @ sizes) >= abs(int(scaled.sum())))
    value_a, value_b = correct_a.sum() / (n * k_a), correct_b.sum() / (n * k_b)
    return {
        "diff": float(scaled.sum() / scale), "low": low, "high": high,
        "p_value": (1 + int(extreme)) / (1 + n_resamples), "a": float(value_a), "b": float(value_b),
        "n": n, "k_a": k_a, "k_b": k_b,
        "n_resamples": n_resamples, "confidence": confidence, "seed": seed, "invalid_policy": "negative",
    }


def _cells(sums: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tp, fp, fn (rows x K) from rows of summed per-item columns: K true positives, K positive
    calls, then the positive items."""
    tp, called, positives = sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:]
    return tp, called - tp, positives - tp


def _check_truth(y_true, n_items) -> np.ndarray:
    try:
        truth = np.asarray(y_true, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y_true must be numeric: {err}") from None
    if truth.ndim != 1:
        raise ValueError("y_true must be one-dimensional")
    if len(truth) != n_items:
        raise ValueError(f"y_true and the labels differ in items: {len(truth)} != {n_items}")
    bad = np.flatnonzero(~np.isin(truth, (0, 1)))
    if len(bad):
        raise ValueError(f"y_true must hold only 0 and 1, found {truth[bad[:5]].tolist()} at rows {bad[:5].tolist()}")
    return truth.astype(np.int64)


def _check_labels(labels, *, name: str = "labels") -> np.ndarray:
    """An items x K int64 array of 1, 0 and INVALID (from -1, None or NaN), or ValueError
    naming the row and sample of a bad value."""
    try:
        values = np.asarray(labels, dtype=float)  # None becomes NaN
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if values.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional (items x samples), got {values.ndim} dimension(s)")
    if values.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sample per item")
    values = np.where(np.isnan(values), INVALID, values)
    bad = np.argwhere(~np.isin(values, (1, 0, INVALID)))
    if len(bad):
        where = ", ".join(f"row {row} sample {col}" for row, col in bad[:5])
        found = values[tuple(bad[:5].T)].tolist()
        raise ValueError(f"{name} must hold 1, 0, or -1/None/NaN for invalid, found {found} at {where}")
    return values.astype(np.int64)

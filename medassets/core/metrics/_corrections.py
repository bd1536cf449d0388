"""Adjustments of a family of p-values for multiple comparisons: Holm (family-wise error
rate), Benjamini-Hochberg (false discovery rate), or none."""

from __future__ import annotations

import numpy as np


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

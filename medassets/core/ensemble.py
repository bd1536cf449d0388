"""An ensemble's label for each item, from its members' labels (1, 0, or -1 when invalid)."""

from __future__ import annotations

import numpy as np

INVALID = -1


def vote(labels: np.ndarray, *, rule: str = "majority", tie: str = "negative", invalid_member: str = "abstain") -> np.ndarray:
    """`labels` has one row per item and one column per member.

    An invalid member answer abstains (`invalid_member="abstain"`) or votes negative
    (`"negative"`). Of the counted votes, `majority` is positive when more than half are
    positive (`tie` decides an even split: negative, positive or invalid), `any` when one
    is, `all` when every one is. An item with no counted vote is invalid.
    """
    labels = np.asarray(labels)
    if invalid_member == "negative":
        labels = np.where(labels == INVALID, 0, labels)
    positive = (labels == 1).sum(axis=1)
    counted = (labels != INVALID).sum(axis=1)
    if rule == "majority":
        tied = {"negative": 0, "positive": 1, "invalid": INVALID}[tie]
        result = np.where(2 * positive > counted, 1, np.where(2 * positive == counted, tied, 0))
    elif rule == "any":
        result = (positive > 0).astype(int)
    elif rule == "all":
        result = (positive == counted).astype(int)
    else:
        raise ValueError(f"rule must be majority, any or all, got {rule!r}")
    return np.where(counted == 0, INVALID, result)

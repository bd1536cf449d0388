"""The seeded, stratified train/test split: the test part is what every model is scored on."""

from __future__ import annotations

import pandas as pd

TEST_SHARE = 0.2
DEFAULT_SEED = 20250101


def stratified_split(frame: pd.DataFrame, *, test_share: float = TEST_SHARE, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The rows with a `part` column ("train" or "test"), sorted by id.

    Rows are sorted by id before splitting, so the split does not depend on the input's order.
    """
    from sklearn.model_selection import train_test_split  # imported to split, not to load the definitions

    ordered = frame.sort_values("id", kind="stable").reset_index(drop=True)
    train_index, test_index = train_test_split(
        ordered.index, test_size=test_share, random_state=seed, stratify=ordered["label"]
    )
    part = pd.Series("train", index=ordered.index, dtype="string")
    part[test_index] = "test"
    return ordered.assign(part=part)

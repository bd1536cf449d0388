"""Great Expectations 1.x suites for the raw data, the split and the predictions.

Results never carry the values of a text column (clinical notes are protected health
information): only expectation names, columns, counts and observed statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

_TEXT_COLUMNS = {"text", "prompt"}


@dataclass(frozen=True)
class QualityResult:
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)


@cache
def _batch_definition():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("medassets")
    return source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")


def validate(frame: pd.DataFrame, suite_name: str, expectations: list) -> QualityResult:
    """Run expectations on a DataFrame; failures are described without text values."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    outcome = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = []
    for item in outcome.results:
        if item.success:
            continue
        kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
        failure = {"expectation": item.expectation_config.type, **kwargs}
        result = item.result or {}
        for key in ("observed_value", "unexpected_count", "unexpected_percent"):
            if key in result:
                failure[key] = _plain(result[key])
        if kwargs.get("column") not in _TEXT_COLUMNS and "partial_unexpected_list" in result:
            failure["examples"] = [_plain(v) for v in result["partial_unexpected_list"][:5]]
        failures.append(failure)
    return QualityResult(bool(outcome.success), len(outcome.results), failures)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def raw_dataset_expectations() -> list:
    import great_expectations as gx

    e = gx.expectations
    return [
        *(e.ExpectColumnToExist(column=c) for c in ("id", "text", "label")),
        e.ExpectColumnValuesToBeUnique(column="id"),
        e.ExpectColumnValuesToNotBeNull(column="text"),
        e.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"^\s*$"),
        e.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
    ]


def positive_rate_expectations(expected_rate: float, tolerance: float) -> list:
    import great_expectations as gx

    return [
        gx.expectations.ExpectColumnMeanToBeBetween(
            column="label", min_value=expected_rate - tolerance, max_value=expected_rate + tolerance
        )
    ]


def split_expectations(frame: pd.DataFrame, test_share: float, share_tolerance: float, rate_tolerance: float) -> list:
    """Test share within tolerance; the positive rate of each part near the whole's."""
    import great_expectations as gx

    e = gx.expectations
    overall = float(frame["label"].mean())
    return [
        e.ExpectColumnValuesToBeInSet(column="part", value_set=["train", "test"]),
        e.ExpectColumnValuesToBeUnique(column="id"),
        e.ExpectColumnProportionOfNonNullValuesToBeBetween(column="test_label", min_value=test_share - share_tolerance, max_value=test_share + share_tolerance),
        e.ExpectColumnMeanToBeBetween(column="test_label", min_value=overall - rate_tolerance, max_value=overall + rate_tolerance),
        e.ExpectColumnMeanToBeBetween(column="train_label", min_value=overall - rate_tolerance, max_value=overall + rate_tolerance),
    ]


def split_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The split with each part's labels in a column of their own (null in the other part)."""
    is_test = frame["part"] == "test"
    return pd.DataFrame(
        {
            "id": frame["id"],
            "part": frame["part"].astype(str),
            "test_label": frame["label"].where(is_test).astype("float64"),
            "train_label": frame["label"].where(~is_test).astype("float64"),
        }
    )


def predictions_expectations(items: int, samples: int) -> list:
    """A test part's answers (with their `sample`): one per item and sample, samples 0 to `samples` - 1."""
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectTableRowCountToEqual(value=items * samples),
        e.ExpectCompoundColumnsToBeUnique(column_list=["id", "sample"]),
        e.ExpectColumnValuesToBeBetween(column="sample", min_value=0, max_value=samples - 1),
        e.ExpectColumnValuesToNotBeNull(column="text"),
    ]


def one_engine_expectations() -> list:
    """Every answer of a partition from one engine release (on a frame of its answers' `engine`)."""
    import great_expectations as gx

    return [gx.expectations.ExpectColumnUniqueValueCountToBeBetween(column="engine", min_value=1, max_value=1)]

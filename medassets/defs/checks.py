"""Asset checks: Great Expectations suites on the raw data, the split and the predictions,
and the paper's invalid-answer criterion on the parsed labels."""


import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from medassets.core import quality
from medassets.core.splitting import TEST_SHARE
from medassets.defs.data import raw_dataset, split
from medassets.defs.partitions import task_partitions
from medassets.tasks import TASKS

# A user's data may differ from the paper's: a positive rate this far from Table 1's is a warning.
POSITIVE_RATE_TOLERANCE = 0.10
SPLIT_SHARE_TOLERANCE = 0.01
SPLIT_RATE_TOLERANCE = 0.01


def gx_result(result: quality.QualityResult, severity=AssetCheckSeverity.ERROR, **metadata) -> AssetCheckResult:
    return AssetCheckResult(
        passed=result.success,
        severity=severity,
        metadata={
            "expectations_evaluated": result.evaluated,
            "expectations_failed": len(result.failures),
            "failures": MetadataValue.json(result.failures),
            **metadata,
        },
    )


@asset_check(asset=raw_dataset, partitions_def=task_partitions, blocking=True,
             description="Great Expectations: required columns, unique ids, non-empty text, labels in {0, 1}.")
def raw_dataset_is_valid(context: AssetCheckExecutionContext, raw_dataset: pd.DataFrame) -> AssetCheckResult:
    return gx_result(quality.validate(raw_dataset, "raw_dataset", quality.raw_dataset_expectations()))


@asset_check(asset=raw_dataset, partitions_def=task_partitions,
             description="Great Expectations: positive rate within 10 points of the paper's Table 1 (a warning).")
def raw_dataset_positive_rate(context: AssetCheckExecutionContext, raw_dataset: pd.DataFrame) -> AssetCheckResult:
    expected = TASKS[context.partition_key].positive_rate
    expectations = quality.positive_rate_expectations(expected, POSITIVE_RATE_TOLERANCE)
    result = quality.validate(raw_dataset, "positive_rate", expectations)
    return gx_result(result, AssetCheckSeverity.WARN, table1_positive_rate=round(expected, 4))


@asset_check(asset=split, partitions_def=task_partitions, blocking=True,
             description="Great Expectations: test share 20% +-1 point; each part's positive rate within 1 point of the whole.")
def split_is_stratified(context: AssetCheckExecutionContext, split: pd.DataFrame) -> AssetCheckResult:
    expectations = quality.split_expectations(split, TEST_SHARE, SPLIT_SHARE_TOLERANCE, SPLIT_RATE_TOLERANCE)
    return gx_result(quality.validate(quality.split_frame(split), "split", expectations))

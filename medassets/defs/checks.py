"""Asset checks: Great Expectations suites on the raw data, the split and the predictions,
and the paper's invalid-answer criterion on the parsed labels and the ensembles' labels."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetIn,
    AssetsDefinition,
    Config,
    MetadataValue,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    asset_check,
)

from pydantic import Field

from medassets.core import quality
from medassets.core.answers import answered_by, engine_counts, part_of, samples_of
from medassets.core.labels import majority_labels
from medassets.core.prompts import variant_prompts
from medassets.defs.data import raw_dataset, split
from medassets.defs.evaluation import ensemble_labels, parsed_labels
from medassets.defs.generation import predictions
from medassets.defs.io import frames_by_partition
from medassets.defs.metadata import latest_metadata
from medassets.defs.partitions import model_and_task, task_ensemble_partitions, task_model_partitions, task_partitions
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
             description="Great Expectations: the test share the split was made with (its `test_share` metadata) "
             "+-1 point; each part's positive rate within 1 point of the whole.")
def split_is_stratified(context: AssetCheckExecutionContext, split: pd.DataFrame) -> AssetCheckResult:
    test_share = latest_metadata(context.instance, "split", context.partition_key).get("test_share")
    if test_share is None:
        return AssetCheckResult(passed=False, metadata={
            "problem": "the split's materialization records no test_share to check against: materialize the split again",
        })
    expectations = quality.split_expectations(split, test_share, SPLIT_SHARE_TOLERANCE, SPLIT_RATE_TOLERANCE)
    return gx_result(quality.validate(quality.split_frame(split), "split", expectations), test_share=test_share)


class InvalidAnswersConfig(Config):
    limit: int = Field(
        10, gt=0, description="The check passes with fewer invalid answers than this; default 10, the paper's "
        "criterion (it tuned its prompts until fewer than 10 answers were invalid).",
    )


def _few_invalid_answers(labels: AssetsDefinition, partitions_def: MultiPartitionsDefinition) -> AssetChecksDefinition:
    """The paper's invalid-answer criterion on a labels asset (a model's parsed labels, an ensemble's labels)."""

    @asset_check(asset=labels, name="few_invalid_answers", partitions_def=partitions_def,
                 description="The paper's criterion: fewer than 10 invalid answers (a warning; metrics still run); with several "
                 "samples per item, items whose majority label is invalid.")
    def _check(context: AssetCheckExecutionContext, config: InvalidAnswersConfig, labels) -> AssetCheckResult:
        by_partition = frames_by_partition(labels, list(context.partition_keys))
        # with several samples per item, the items whose majority is invalid
        invalid = {key: (items := majority_labels(frame))[items["label"] == -1] for key, frame in by_partition.items()}
        over = sorted(key for key, rows in invalid.items() if len(rows) >= config.limit)
        every = pd.concat(invalid.values(), ignore_index=True)
        return AssetCheckResult(
            passed=not over,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "invalid": len(every),
                "limit": config.limit,
                "invalid_by_partition": MetadataValue.json({key: len(rows) for key, rows in invalid.items()}),
                "partitions_over_limit": MetadataValue.json(over),
                "invalid_reasons": MetadataValue.json(every["invalid_reason"].value_counts().to_dict()),
                # ids and reasons only: answers can quote a clinical note
                "examples": MetadataValue.json(
                    [{"id": i, "reason": r} for i, r in zip(every["id"].head(5), every["invalid_reason"].head(5))]
                ),
            },
        )

    return _check


few_invalid_answers = _few_invalid_answers(parsed_labels, task_model_partitions)
ensemble_few_invalid_answers = _few_invalid_answers(ensemble_labels, task_ensemble_partitions)


@asset_check(asset=predictions, partitions_def=task_model_partitions,
             additional_ins={"prompts": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task"))},
             description="Great Expectations: one prediction per test prompt and sample (samples 0 to the last one the "
             "frame holds), no missing text (a scored answer's is empty).")
def predictions_are_complete(context: AssetCheckExecutionContext, predictions, prompts) -> AssetCheckResult:
    keys = list(context.partition_keys)
    predictions = frames_by_partition(predictions, keys)
    prompts = frames_by_partition(prompts, sorted({model_and_task(key)[1] for key in keys}))
    results = {}
    for key, frame in predictions.items():
        test = part_of(frame, "test")
        test = test.assign(sample=samples_of(test))
        items = len(variant_prompts(prompts[model_and_task(key)[1]]))
        samples = int(test["sample"].max()) + 1 if len(test) else 1
        results[key] = quality.validate(test, "predictions", quality.predictions_expectations(items, samples))
    failures = [dict(failure, partition=key) for key, result in results.items() for failure in result.failures]
    return gx_result(
        quality.QualityResult(all(r.success for r in results.values()), sum(r.evaluated for r in results.values()), failures),
        partitions=len(results),
    )


@asset_check(asset=predictions, partitions_def=task_model_partitions,
             description="Great Expectations: every answer of a partition from one engine release (a warning): answers cached "
             "by one vLLM release and generated by another, or cached before engines were recorded, are flagged.")
def predictions_from_one_engine(context: AssetCheckExecutionContext, predictions) -> AssetCheckResult:
    predictions = frames_by_partition(predictions, list(context.partition_keys))
    results = {key: quality.validate(pd.DataFrame({"engine": answered_by(frame)}), "engines", quality.one_engine_expectations())
               for key, frame in predictions.items()}
    failures = [dict(failure, partition=key) for key, result in results.items() for failure in result.failures]
    return gx_result(
        quality.QualityResult(all(r.success for r in results.values()), sum(r.evaluated for r in results.values()), failures),
        AssetCheckSeverity.WARN,
        engines=MetadataValue.json({key: engine_counts(frame) for key, frame in predictions.items()}),
    )

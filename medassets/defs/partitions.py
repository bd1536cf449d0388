"""Partitions: `task` is static (the six tasks), `model` is dynamic (the model registry).
Per-(task, model) keys read "model|task": Dagster orders the two dimensions by name."""

from collections import defaultdict
from collections.abc import Iterable

from dagster import DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition, StaticPartitionsDefinition

from medassets.tasks import TASK_KEYS

task_partitions = StaticPartitionsDefinition(list(TASK_KEYS))
model_partitions = DynamicPartitionsDefinition(name="model")
task_model_partitions = MultiPartitionsDefinition({"task": task_partitions, "model": model_partitions})


def partition_key(model: str, task: str) -> str:
    return str(MultiPartitionKey({"model": model, "task": task}))


def model_and_task(key: str) -> tuple[str, str]:
    dimensions = task_model_partitions.get_partition_key_from_str(key).keys_by_dimension
    return dimensions["model"], dimensions["task"]


def tasks_by_model(keys: Iterable[str]) -> dict[str, list[str]]:
    """A step's per-(task, model) partition keys, grouped by model in their order."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        model, task = model_and_task(key)
        grouped[model].append(task)
    return dict(grouped)


def model_range_tags(first: str, last: str | None = None) -> dict[str, str]:
    """Run tags for one run over the six tasks of the models from `first` to `last` (in the
    partitions' order; default: `first` alone): one engine load for all the prompts of the
    models that share it."""
    return {
        "dagster/asset_partition_range_start": partition_key(first, TASK_KEYS[0]),
        "dagster/asset_partition_range_end": partition_key(last or first, TASK_KEYS[-1]),
    }

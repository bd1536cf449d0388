"""Partitions: `task` is static (the six tasks), `model` is dynamic (the model registry)."""

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from medassets.tasks import TASK_KEYS

task_partitions = StaticPartitionsDefinition(list(TASK_KEYS))
model_partitions = DynamicPartitionsDefinition(name="model")
# Dagster orders the two dimensions by name: keys read "model|task".
task_model_partitions = MultiPartitionsDefinition({"task": task_partitions, "model": model_partitions})


def model_and_task(partition_key: str) -> tuple[str, str]:
    dimensions = task_model_partitions.get_partition_key_from_str(partition_key).keys_by_dimension
    return dimensions["model"], dimensions["task"]

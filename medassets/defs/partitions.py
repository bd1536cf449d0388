"""Partitions: `task` is static (the six tasks); `model` and `ensemble` are dynamic, synced
from the model registry (an ensemble entry is an `ensemble` partition, every other entry a
`model` partition). Keys read "model|task" and "ensemble|task": Dagster orders the two
dimensions by name, so both name the model first."""

from collections import defaultdict
from collections.abc import Iterable, Mapping

from dagster import DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition, StaticPartitionsDefinition

from medassets.core.registry import EnsembleModel
from medassets.tasks import TASK_KEYS

task_partitions = StaticPartitionsDefinition(list(TASK_KEYS))
model_partitions = DynamicPartitionsDefinition(name="model")
ensemble_partitions = DynamicPartitionsDefinition(name="ensemble")
task_model_partitions = MultiPartitionsDefinition({"task": task_partitions, "model": model_partitions})
task_ensemble_partitions = MultiPartitionsDefinition({"task": task_partitions, "ensemble": ensemble_partitions})


def registered_partitions(registry: Mapping[str, object]) -> dict[str, list[str]]:
    """The registry's names by the dynamic partitions they are keys of, in the registry's order."""
    names: dict[str, list[str]] = {model_partitions.name: [], ensemble_partitions.name: []}
    for name, spec in registry.items():
        names[ensemble_partitions.name if isinstance(spec, EnsembleModel) else model_partitions.name].append(name)
    return names


def partition_changes(registry: Mapping[str, object], instance) -> dict[str, tuple[list[str], list[str]]]:
    """What keeps the instance's `model` and `ensemble` partitions in step with the registry: for
    each, the names registered but not yet partitions (in the registry's order) and the partitions
    no longer registered (sorted). The registry sensor requests them; `make run` applies them."""
    changes = {}
    for dimension, names in registered_partitions(registry).items():
        current = set(instance.get_dynamic_partitions(dimension))
        changes[dimension] = ([name for name in names if name not in current], sorted(current - set(names)))
    return changes


def partition_key(model: str, task: str) -> str:
    return str(MultiPartitionKey({"model": model, "task": task}))


def model_and_task(key: str) -> tuple[str, str]:
    """The model (or ensemble) and the task of a "model|task" (or "ensemble|task") key."""
    model, task = key.split("|")
    return model, task


def tasks_by_model(keys: Iterable[str]) -> dict[str, list[str]]:
    """A step's per-(task, model) partition keys, grouped by model in their order."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        model, task = model_and_task(key)
        grouped[model].append(task)
    return dict(grouped)


def model_range_tags(first: str, last: str | None = None) -> dict[str, str]:
    """Run tags for one run over the six tasks of the models (or ensembles) from `first` to
    `last` (in the partitions' order; default: `first` alone): one engine load for all the
    prompts of the models that share it, one step for all their labels and metrics."""
    return {
        "dagster/asset_partition_range_start": partition_key(first, TASK_KEYS[0]),
        "dagster/asset_partition_range_end": partition_key(last or first, TASK_KEYS[-1]),
    }


def task_range_tags() -> dict[str, str]:
    """Run tags for one run over the six tasks of a task-partitioned asset."""
    return {"dagster/asset_partition_range_start": TASK_KEYS[0], "dagster/asset_partition_range_end": TASK_KEYS[-1]}

"""Runs on Kubernetes: `K8sRunLauncher`, asking for what each run's models need.

Runs that generate are requested in many ways: a backfill or a job launched from the UI, the
registry sensor, declarative automation, `make run`. Rather than set tags at each of those
places (automation's runs take no per-model tags), the launcher reads the run's `model`
partitions when it builds the run's Kubernetes Job, and asks for their GPUs (a model's
tensor-parallel size; none for the baseline and served models), a memory-backed /dev/shm for
tensor parallelism, and the registry entry's node selector and tolerations. Deployment-wide
settings stay in the launcher's own config (`run_k8s_config`, `resources`, ...).

Use it in the instance config (deploy/helm/values.yaml does):
    run_launcher:
      module: medassets.defs.kubernetes
      class: ModelAwareK8sRunLauncher
"""

from collections.abc import Iterable, Mapping

from dagster import AssetKey
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig

from medassets import paths
from medassets.core.registry import load_registry
from medassets.defs.jobs import generate_job
from medassets.defs.partitions import model_and_task, model_partitions, registered_partitions

PREDICTIONS = AssetKey("predictions")
SHM = "dshm"


def run_models(tags: Mapping[str, str], registered: list[str]) -> list[str]:
    """The models whose partitions a run covers, from the tags Dagster gives it."""
    if "dagster/partition/model" in tags:
        return [tags["dagster/partition/model"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if not (start and end) or "|" not in start:  # no range, or one over the tasks alone (the error analysis)
        return []
    first, last = model_and_task(start)[0], model_and_task(end)[0]
    if first in registered and last in registered:  # partitions are added in the registry's order
        return registered[registered.index(first) : registered.index(last) + 1]
    return sorted({first, last})


def generates(run: DagsterRun) -> bool:
    return run.job_name == generate_job.name or PREDICTIONS in (run.asset_selection or set())


def k8s_config(specs: Iterable) -> dict:
    """The dagster-k8s config of a run generating for these models, one after the other."""
    specs = list(specs)
    gpus = max((spec.gpus for spec in specs), default=0)
    node_selector = {key: value for spec in specs for key, value in spec.kubernetes.node_selector.items()}
    tolerations = [dict(t) for t in dict.fromkeys(tuple(sorted(t.items())) for spec in specs for t in spec.kubernetes.tolerations)]
    container, pod = {}, {}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
        # Tensor parallelism shares tensors through /dev/shm; a container's default is 64 MB.
        container["volume_mounts"] = [{"name": SHM, "mount_path": "/dev/shm"}]
        pod["volumes"] = [{"name": SHM, "empty_dir": {"medium": "Memory"}}]
    if node_selector:
        pod["node_selector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    return {key: value for key, value in (("container_config", container), ("pod_spec_config", pod)) if value}


class ModelAwareK8sRunLauncher(K8sRunLauncher):
    """`K8sRunLauncher` whose generating runs ask for what their models need."""

    def get_container_context_for_run(self, dagster_run: DagsterRun) -> K8sContainerContext:
        context = super().get_container_context_for_run(dagster_run)
        if not generates(dagster_run):
            return context
        registry = load_registry(paths.registry_path())
        models = registered_partitions(registry)[model_partitions.name]
        specs = [registry[name] for name in run_models(dagster_run.tags, models) if name in models]
        config = k8s_config(specs)
        if not config:
            return context
        return context.merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(config)))

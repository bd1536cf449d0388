"""The Kubernetes Jobs that `ModelAwareK8sRunLauncher` (dagster-k8s's `K8sRunLauncher`) creates,
without a cluster: the launcher configured on a Dagster instance as a deployment configures it,
with a fake kubeconfig and a recording batch API (as dagster-k8s's own tests do). Runs are
requested the way each launch path requests them, through Dagster's own code: a backfill
through the GraphQL API the UI calls, submitted by the backfill daemon's code; declarative
automation ticked by the asset daemon's code; the launchpad through GraphQL; the registry
sensor; `make run`. Every run goes through the instance's run queue (the queue daemon's code)
to the launcher. Checked, for the embedded model on a CPU, a 70B model on 4 GPUs and a run
over both: the GPU limit, /dev/shm, node selector and tolerations, image and environment, and
the Job against the Kubernetes API models of the `kubernetes` client."""

import json
import logging
import os
import time

import kubernetes.client
import pytest
from dagster import AssetKey, AssetMaterialization, AssetObservation, DagsterEventType, DagsterInstance, build_schedule_context, build_sensor_context
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.events import DagsterEvent
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.asset_daemon import AssetDaemon
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION, LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql
from dagster_k8s.job import get_job_name_from_run_id
from kubernetes.client import ApiClient, V1Job

from medassets.definitions import defs
from medassets.defs.automation import model_registry
from medassets.defs.kubernetes import ModelAwareK8sRunLauncher
from medassets.defs.partitions import model_range_tags, partition_key
from medassets.tasks import TASK_KEYS

pytestmark = pytest.mark.slow  # Dagster's daemons' code and the launcher, in process: seconds per test

SMALL, LARGE, BASELINE = "smollm2-135m", "llama3-70b", "tfidf-logreg"
REGISTRY = f"""models:
  - name: {SMALL}
    source: {{embedded: smollm2-135m-instruct}}
  - name: {LARGE}
    source: {{path: WEIGHTS}}
    dtype: bfloat16
    tensor_parallel_size: 4
    kubernetes:
      node_selector: {{gpu: h100}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
  - name: {BASELINE}
    backend: baseline
"""
IMAGE = "registry.example.org/medassets:1.0"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""
INSTANCE = f"""telemetry: {{enabled: false}}
run_launcher:
  module: medassets.defs.kubernetes
  class: ModelAwareK8sRunLauncher
  config:
    service_account_name: dagster
    instance_config_map: dagster-instance
    dagster_home: /opt/dagster/dagster_home
    job_image: {IMAGE}
    load_incluster_config: false
    kubeconfig_file: KUBECONFIG
    env_vars: ["MEDASSETS_STORAGE_URL=s3://team-bucket/medassets"]
    env_secrets: [medassets-postgres]
"""
LOCATION = "medassets"


class RecordingBatchApi:
    """Kubernetes' batch API as the launcher uses it: the Jobs it is asked to create, by name."""

    def __init__(self, api_client=None):
        self.jobs: dict[str, V1Job] = {}

    def create_namespaced_job(self, body, namespace, **kwargs):
        self.jobs[body.metadata.name] = body


class Cluster:
    """A Dagster instance whose run launcher is ModelAwareK8sRunLauncher, with the medassets
    code location loaded in process, and the daemons' code to run by hand."""

    def __init__(self, instance: DagsterInstance, context: WorkspaceProcessContext, batch: RecordingBatchApi):
        self.instance, self.context, self.batch = instance, context, batch

    def graphql(self, query: str, variables: dict) -> dict:
        result = execute_dagster_graphql(self.context.create_request_context(), query, variables=variables)
        assert not result.errors, result.errors
        return result.data

    def backfill_from_the_ui(self, keys: list[str]) -> str:
        """A backfill of `predictions` as the UI's partition dialog launches it."""
        params = {"assetSelection": [{"path": ["predictions"]}], "partitionNames": keys}
        launched = self.graphql(LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        execute_backfill_iteration_until_runs(self)
        return launched["backfillId"]

    def launch_from_the_launchpad(self, job_name: str, tags: dict) -> str:
        selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "pipelineName": job_name}
        params = {"selector": selector, "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
        launched = self.graphql(LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def automation_tick(self, at: float) -> None:
        """One evaluation of the `reevaluation` automation sensor by the asset daemon's code, at `at`."""
        daemon = AssetDaemon(settings=self.instance.get_auto_materialize_settings(), pre_sensor_interval_seconds=0)
        with freeze_time(at):
            daemon._run_iteration_impl(self.context, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={})

    def dequeue(self) -> dict[str, V1Job]:
        """The run queue daemon's code launches the queued runs: the Job built for each run."""
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(self.context))
        return {run.run_id: self.job_of(run) for run in self.instance.get_runs()}

    def job_of(self, run: DagsterRun) -> V1Job:
        job = self.batch.jobs[get_job_name_from_run_id(run.run_id)]
        args = job.spec.template.spec.containers[0].args
        assert run.run_id in json.dumps(args), "the Job does not execute this run"
        return job


def execute_backfill_iteration_until_runs(cluster: Cluster) -> None:
    """The backfill daemon's iterations, until its backfills have requested their runs."""
    before = len(cluster.instance.get_runs())
    for _ in range(5):
        list(execute_backfill_iteration(cluster.context, logging.getLogger("backfill")))
        if len(cluster.instance.get_runs()) > before:
            return
    raise AssertionError("the backfill daemon requested no run")


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    registry = tmp_path / "models.yaml"
    registry.write_text(REGISTRY.replace("WEIGHTS", str(weights)))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path / "home"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    batch = RecordingBatchApi()
    monkeypatch.setattr(kubernetes.client, "BatchV1Api", lambda api_client=None: batch)  # the cluster's API, recorded
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "dagster.yaml").write_text(INSTANCE.replace("KUBECONFIG", str(kubeconfig)))
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="medassets.definitions", attribute="defs", working_directory=os.getcwd()), location_name=LOCATION,
    )
    with DagsterInstance.from_config(str(tmp_path / "instance")) as instance:
        instance.add_dynamic_partitions("model", [SMALL, LARGE, BASELINE])
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
            yield Cluster(instance, context, batch)


def pod(job: V1Job):
    return job.spec.template.spec


def gpus(job: V1Job) -> int:
    limits = pod(job).containers[0].resources.limits if pod(job).containers[0].resources else None
    return int((limits or {}).get("nvidia.com/gpu", 0))


def check_job(job: V1Job, gpu_count: int, node_selector: dict | None = None) -> None:
    """What every Job must hold, and the GPUs, /dev/shm and placement of its model."""
    # A valid Job by the Kubernetes API models: it round-trips through the client's own (de)serialization.
    serialized = ApiClient().sanitize_for_serialization(job)
    response = type("Response", (), {"data": json.dumps(serialized)})()
    assert ApiClient().deserialize(response, "V1Job") == job
    container = pod(job).containers[0]
    assert container.image == IMAGE
    env = {variable.name for variable in container.env or []}
    assert "MEDASSETS_STORAGE_URL" in env and "DAGSTER_RUN_JOB_NAME" in env
    assert [source.secret_ref.name for source in container.env_from if source.secret_ref] == ["medassets-postgres"]
    assert gpus(job) == gpu_count
    mounts = {mount.mount_path: mount.name for mount in container.volume_mounts or []}
    volumes = {volume.name: volume for volume in pod(job).volumes or []}
    if gpu_count:
        assert volumes[mounts["/dev/shm"]].empty_dir.medium == "Memory"
    else:
        assert "/dev/shm" not in mounts
    assert (pod(job).node_selector or {}) == (node_selector or {})
    if node_selector:
        assert [(t.key, t.operator, t.effect) for t in pod(job).tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]


EXPECTED = {SMALL: (1, None), LARGE: (4, {"gpu": "h100"}), BASELINE: (0, None)}


@pytest.mark.parametrize("model", list(EXPECTED))
def test_a_backfill_from_the_ui(cluster, model):
    """One model's six partitions of `predictions`: one run (single-run policy) asking for its GPUs."""
    backfill = cluster.backfill_from_the_ui([partition_key(model, task) for task in TASK_KEYS])
    jobs = cluster.dequeue()
    (run,) = cluster.instance.get_runs()
    assert run.tags["dagster/backfill"] == backfill
    assert run.tags.items() >= model_range_tags(model).items()
    check_job(jobs[run.run_id], *EXPECTED[model])


def test_a_backfill_of_two_models_is_a_run_for_each(cluster):
    cluster.backfill_from_the_ui([partition_key(model, task) for model in (SMALL, LARGE) for task in TASK_KEYS])
    jobs = cluster.dequeue()
    runs = {run.tags["dagster/asset_partition_range_start"]: run for run in cluster.instance.get_runs()}
    assert sorted(runs) == sorted(partition_key(model, TASK_KEYS[0]) for model in (SMALL, LARGE))
    for model in (SMALL, LARGE):
        check_job(jobs[runs[partition_key(model, TASK_KEYS[0])].run_id], *EXPECTED[model])


def test_a_run_over_two_models_asks_for_the_larger_ones_gpus_and_placement(cluster):
    """The `generate` job over a 1-GPU and a 4-GPU model, one after the other, from the launchpad."""
    tags = {"dagster/asset_partition_range_start": partition_key(SMALL, TASK_KEYS[0]),
            "dagster/asset_partition_range_end": partition_key(LARGE, TASK_KEYS[-1])}
    run_id = cluster.launch_from_the_launchpad("generate", tags)
    check_job(cluster.dequeue()[run_id], *EXPECTED[LARGE])


@pytest.mark.parametrize("model", list(EXPECTED))
def test_the_generate_job_from_the_launchpad(cluster, model):
    key = partition_key(model, TASK_KEYS[0])
    tags = {"dagster/partition": key, "dagster/partition/model": model, "dagster/partition/task": TASK_KEYS[0]}
    run_id = cluster.launch_from_the_launchpad("generate", tags)
    check_job(cluster.dequeue()[run_id], *EXPECTED[model])


def test_the_registry_sensor(cluster):
    cluster.instance.delete_dynamic_partition("model", LARGE)
    for task in TASK_KEYS:
        cluster.instance.report_runless_asset_event(AssetMaterialization(asset_key="prompts", partition=task))
    result = model_registry(build_sensor_context(instance=cluster.instance))
    for added in result.dynamic_partitions_requests:  # as the sensor daemon applies them, before the runs
        cluster.instance.add_dynamic_partitions(added.partitions_def_name, added.partition_keys)
    (request,) = [r for r in result.run_requests if r.job_name == "generate"]
    run_id = cluster.launch_from_the_launchpad("generate", request.tags)
    check_job(cluster.dequeue()[run_id], *EXPECTED[LARGE])


def test_automation_after_the_weekly_schedule(cluster):
    """The schedule's run observes the weights (it needs no GPU) and sees a new revision of the
    70B model; the automation sensor then requests that model's six predictions, in runs that
    ask for its GPUs and placement."""
    instance = cluster.instance
    for model in EXPECTED:
        instance.report_runless_asset_event(AssetObservation(asset_key="model_weights", partition=model, tags={DATA_VERSION_TAG: "r1"}))
        for task in TASK_KEYS:
            key = partition_key(model, task)
            for asset in ("split", "prompts", "predictions"):
                instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key if asset == "predictions" else task))
    now = time.time()
    cluster.automation_tick(now)  # the sensor's first tick records where it starts from

    (schedule,) = defs.schedules
    (observe,) = schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    observe_run = cluster.launch_from_the_launchpad(schedule.job_name, observe.tags or {})
    check_job(cluster.dequeue()[observe_run], 0)
    # What that run reports on the cluster: a new revision of one model's weights, then success.
    instance.report_runless_asset_event(AssetObservation(asset_key="model_weights", partition=LARGE, tags={DATA_VERSION_TAG: "r2"}))
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=schedule.job_name), run_id=observe_run)

    cluster.automation_tick(now + 60)  # past the sensor's minimum interval
    # Automation asks for the model's partitions as a backfill, which the backfill daemon submits.
    (backfill,) = instance.get_backfills()
    assert backfill.tags.get("dagster/sensor_name") == "reevaluation"
    execute_backfill_iteration_until_runs(cluster)
    jobs = cluster.dequeue()
    automated = [run for run in instance.get_runs() if run.tags.get("dagster/backfill") == backfill.backfill_id]
    assert len(automated) == 1, "the model's six tasks were not one run (single-run backfill policy)"
    assert set().union(*(covered_partitions(instance, run) for run in automated)) == {partition_key(LARGE, task) for task in TASK_KEYS}
    for run in automated:
        assert AssetKey("predictions") in run.asset_selection
        check_job(jobs[run.run_id], *EXPECTED[LARGE])


def covered_partitions(instance: DagsterInstance, run: DagsterRun) -> set[str]:
    """The `predictions` partitions a run covers, by the tags Dagster gave it."""
    if "dagster/partition" in run.tags:
        return {run.tags["dagster/partition"]}
    start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
    keys = defs.resolve_assets_def("predictions").partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    return set(keys[keys.index(start) : keys.index(end) + 1])


def test_runs_that_do_not_generate_ask_for_no_gpu(cluster):
    key = partition_key(LARGE, TASK_KEYS[0])
    evaluate = cluster.launch_from_the_launchpad(
        "evaluate", {"dagster/partition": key, "dagster/partition/model": LARGE, "dagster/partition/task": TASK_KEYS[0]}
    )
    compare = cluster.launch_from_the_launchpad("compare", {})
    jobs = cluster.dequeue()
    check_job(jobs[evaluate], 0)
    check_job(jobs[compare], 0)


def test_the_helm_values_configure_the_launcher_and_the_team_instance():
    """deploy/helm/values.yaml: the launcher's config is valid for it, and the daemon, the run
    queue, the pool and run monitoring match the team instance (deploy/dagster.yaml)."""
    from pathlib import Path

    import yaml
    from dagster._config import process_config

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    values = yaml.safe_load((deploy / "helm" / "values.yaml").read_text())
    launcher = values["runLauncher"]["config"]["customRunLauncher"]
    assert (launcher["module"], launcher["class"]) == ("medassets.defs.kubernetes", "ModelAwareK8sRunLauncher")
    assert process_config(ModelAwareK8sRunLauncher.config_type(), launcher["config"]).success
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    assert values["dagsterDaemon"]["image"] == values["dagsterWebserver"]["image"] == image  # they import the launcher
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    team = yaml.safe_load((deploy / "dagster.yaml").read_text())["concurrency"]
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == team["runs"]["tag_concurrency_limits"]
    assert values["concurrency"]["pools"]["defaultLimit"] == team["pools"]["default_limit"]
    dockerfile = (deploy / "Dockerfile").read_text().splitlines()
    copied = {source for line in dockerfile if line.startswith("COPY") for source in line.split()[1:-1]}
    assert copied == {"pyproject.toml", "README.md", "medassets", "data"}  # code and sample data, no weights

"""The Kubernetes Jobs that `ModelAwareK8sRunLauncher` (dagster-k8s's `K8sRunLauncher`) creates,
without a cluster: a fake kubeconfig and a recording batch API, as dagster-k8s's own tests
do. For runs requested by every launch path (a backfill from the UI, the `generate` job from
the launchpad, the registry sensor, declarative automation after the weekly schedule's
observation, `make run`), for the embedded model on a CPU and a 70B model on 4 GPUs: the GPU
limit, /dev/shm, node selector and tolerations, image and environment, and the Job checked
against the Kubernetes API models of the `kubernetes` client."""

import json
import uuid

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, build_schedule_context, build_sensor_context
from dagster import evaluate_automation_conditions, reconstructable
from dagster._core.launcher import LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRun
from kubernetes.client import ApiClient, V1Job

import dagster_runs
from medassets.definitions import defs
from medassets.defs.automation import model_registry
from medassets.defs.kubernetes import ModelAwareK8sRunLauncher
from medassets.defs.partitions import model_range_tags, partition_key, task_model_partitions
from medassets.tasks import TASK_KEYS

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


class RecordingBatchApi:
    def __init__(self):
        self.jobs: list[V1Job] = []

    def create_namespaced_job(self, body, namespace, **kwargs):
        self.jobs.append(body)


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
    launcher = ModelAwareK8sRunLauncher(
        service_account_name="dagster", instance_config_map="dagster-instance", dagster_home="/opt/dagster/dagster_home", job_image=IMAGE,
        load_incluster_config=False, kubeconfig_file=str(kubeconfig), k8s_client_batch_api=batch,
        env_vars=["MEDASSETS_STORAGE_URL=s3://team-bucket/medassets"], env_secrets=["medassets-postgres"],
    )
    (tmp_path / "instance").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "instance")) as instance:  # launching needs a persistent one
        launcher.register_instance(instance)
        instance.add_dynamic_partitions("model", [SMALL, LARGE, BASELINE])

        def launch(job_name: str, tags: dict, asset_selection=None) -> V1Job:
            run = DagsterRun(
                job_name=job_name, run_id=str(uuid.uuid4()), tags=tags, asset_selection=asset_selection,
                job_code_origin=reconstructable(dagster_runs.generate).get_python_origin(),
            )
            instance.add_run(run)
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
            return batch.jobs[-1]

        yield instance, launch


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
PREDICTIONS = frozenset({AssetKey("predictions")})


@pytest.mark.parametrize("model", list(EXPECTED))
def test_a_backfill_from_the_ui(cluster, model):
    """A backfill of one model's partitions of `predictions`: one run (single-run policy)."""
    _, launch = cluster
    check_job(launch("__ASSET_JOB", model_range_tags(model), PREDICTIONS), *EXPECTED[model])


@pytest.mark.parametrize("model", list(EXPECTED))
def test_the_generate_job_from_the_launchpad(cluster, model):
    _, launch = cluster
    key = partition_key(model, TASK_KEYS[0])
    tags = {"dagster/partition": key, "dagster/partition/model": model, "dagster/partition/task": TASK_KEYS[0]}
    check_job(launch("generate", tags), *EXPECTED[model])


@pytest.mark.parametrize("model", list(EXPECTED))
def test_make_run(cluster, model):
    _, launch = cluster
    check_job(launch("generate", model_range_tags(model)), *EXPECTED[model])


def test_the_registry_sensor(cluster):
    instance, launch = cluster
    instance.delete_dynamic_partition("model", LARGE)
    for task in TASK_KEYS:
        instance.report_runless_asset_event(AssetMaterialization(asset_key="prompts", partition=task))
    result = model_registry(build_sensor_context(instance=instance))
    (request,) = [r for r in result.run_requests if r.job_name == "generate"]
    check_job(launch("generate", request.tags), *EXPECTED[LARGE])


def test_automation_after_the_weekly_schedule(cluster):
    """The schedule observes the weights (a run that needs no GPU); automation then requests
    the predictions of the model whose revision changed, in a run that asks for its GPUs."""
    instance, launch = cluster
    (schedule,) = defs.schedules
    (observe,) = schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    check_job(launch(schedule.job_name, observe.tags or {}), 0)
    for model in EXPECTED:
        for task in TASK_KEYS:
            key = partition_key(model, task)
            for asset in ("split", "prompts", "predictions"):
                instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key if asset == "predictions" else task))
    cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
    instance.report_runless_asset_event(AssetMaterialization(asset_key="prompts", partition=TASK_KEYS[0]))  # new prompts
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = result.get_requested_partitions(AssetKey("predictions"))
    assert requested == {partition_key(model, TASK_KEYS[0]) for model in EXPECTED}
    for key in requested:
        # The tags automation gives a run of one partition: Dagster's own, per dimension.
        tags = task_model_partitions.get_tags_for_partition_key(key)
        check_job(launch("__ASSET_JOB", tags, PREDICTIONS), *EXPECTED[tags["dagster/partition/model"]])


def test_runs_that_do_not_generate_ask_for_no_gpu(cluster):
    _, launch = cluster
    key = partition_key(LARGE, TASK_KEYS[0])
    check_job(launch("evaluate", {"dagster/partition": key, "dagster/partition/model": LARGE}), 0)
    check_job(launch("compare", {}), 0)


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

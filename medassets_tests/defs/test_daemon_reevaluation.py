"""The two headline re-evaluation flows, with Dagster's own daemon (`dagster-daemon run`) as
the only actor, on a temporary instance and a small dataset (a few rows per task), started
together (each would wait on the backfill daemon's 30-s iterations alone; neither may disturb
the other):

1. a model appended to the registry file gets its partition, one generation run over its six
   tasks, then parsed labels, metrics and an updated comparison that includes it;
2. a changed revision of a registered `path:` model (its weights touched), followed by the
   `observe_models` job, re-runs exactly that model's six predictions in one run, then what
   depends on them (an ensemble it is a member of among them), and no partitions of the
   model that did not change.

Every wait is bounded and names what did not happen; the daemon and everything it started
are stopped and checked gone. Each of the daemon's runs executes its steps in the run's own
process (in_process_definitions.py says why).
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, UTC
from functools import partial
from pathlib import Path

import pytest
from conftest import REPO, small_datasets
from dagster_runs import generate_range
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionsFilter
from support import TOKEN_VARIABLE, processes_with_token

from medassets.definitions import defs
from medassets.defs.kubernetes import run_models
from medassets.defs.partitions import model_and_task, partition_key
from medassets.tasks import TASK_KEYS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

BASELINE, LOCAL, ADDED, ENSEMBLE = "tfidf-logreg", "local-smollm", "tfidf-logreg-added", "vote"
# The run queue is checked every second (Dagster's default: 5 s) and starts two runs at once
# (default: 10): each run starts a process per step, and ten at a time thrash 2 cores.
INSTANCE_CONFIG = """telemetry: {enabled: false}
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config: {max_concurrent_runs: 2, dequeue_interval_seconds: 1}
"""
WAIT_S = 420


def _registry(weights: Path) -> str:
    return f"""models:
  - name: {BASELINE}
    backend: baseline
  - name: {LOCAL}
    source: {{path: {weights}}}
    sampling: {{max_tokens: 8}}
  - name: {ENSEMBLE}
    backend: ensemble
    members: [{BASELINE}, {LOCAL}]
"""


class Daemon:
    """`dagster-daemon run` on the workspace's instance, in a session of its own."""

    def __init__(self, workspace):
        self.token = uuid.uuid4().hex
        self.log_file = workspace.root / "daemon.log"
        env = workspace.env() | {TOKEN_VARIABLE: self.token, "DAGSTER_HOME": str(workspace.root / "instance"),
                                 "MEDASSETS_REEVALUATION_CRON": "0 3 1 1 *",  # the schedule stays out of the way
                                 "MEDASSETS_SENSOR_INTERVAL_S": "5"}  # automation and the sensors every 5 s, not 30 and 60
        daemon = Path(sys.executable).with_name("dagster-daemon")
        code = ["-f", str(Path(__file__).with_name("in_process_definitions.py")), "-a", "defs", "-d", str(REPO)]
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen([str(daemon), "run", *code], cwd=REPO, env=env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]

    def stop(self) -> list[str]:
        """Stops the daemon's process group, then returns what of its processes is left (and kills it)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        deadline = time.monotonic() + 15
        while (left := processes_with_token(self.token)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for process in left:
            process.kill()
        return [f"{p.pid}" for p in left]


def wait_for(what: str, condition, daemon: Daemon, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.process.poll() is None, f"the daemon exited while waiting for {what}:\n{daemon.log_tail()}"
        value = condition()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"within {timeout} s: {what} did not happen. Daemon log:\n{daemon.log_tail()}")


def _records_after(instance, asset: str, since: float) -> list:
    return instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), after_timestamp=since), limit=1000).records


def materialized_after(instance, asset: str, since: float) -> dict[str, list[str]]:
    """{partition: [run ids]} of the asset's materializations after `since` (a timestamp)."""
    found: dict[str, list[str]] = {}
    for record in _records_after(instance, asset, since):
        found.setdefault(record.asset_materialization.partition, []).append(record.run_id)
    return found


def last_materialized(instance, asset: str, partitions: set[str], since: float) -> float:
    """The timestamp of the latest materialization, after `since`, of any of the asset's `partitions`."""
    return max(r.timestamp for r in _records_after(instance, asset, since) if r.asset_materialization.partition in partitions)


def failed_runs(instance) -> list[str]:
    return [f"{run.job_name} {run.run_id}" for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))]


@pytest.fixture(scope="module")
def evaluated(make_workspace, models_dir, tmp_path_factory):
    """Both models and their ensemble evaluated on the small dataset, and compared, by in-process runs."""
    weights = tmp_path_factory.mktemp("local-weights")
    for path in (models_dir / EMBEDDED_MODEL_NAME).iterdir():  # a folder of its own, with the embedded model's files
        (weights / path.name).symlink_to(path)
    datasets = small_datasets(tmp_path_factory.mktemp("small-data"), positives=5, negatives=10)
    workspace = make_workspace(_registry(weights), datasets=datasets)
    (workspace.root / "instance").mkdir()
    (workspace.root / "instance" / "dagster.yaml").write_text(INSTANCE_CONFIG)
    # As `make run`: the analysis settings observed before the metrics, so the sensor's first observation changes nothing.
    runs = [f"prepare_data:{task}" for task in TASK_KEYS] + ["observe_models", "observe_ensembles", "observe_analysis"]
    runs += [generate_range(BASELINE), generate_range(LOCAL)]
    runs += [f"evaluate:{partition_key(model, task)}" for model in (BASELINE, LOCAL) for task in TASK_KEYS]
    runs += [f"evaluate_ensembles:{partition_key(ENSEMBLE, task)}" for task in TASK_KEYS] + ["compare"]
    workspace.run(*runs, timeout=600)
    return workspace, weights


@pytest.fixture(scope="module")
def daemon(evaluated):
    workspace, _ = evaluated
    running = Daemon(workspace)
    with DagsterInstance.from_config(str(workspace.root / "instance")) as instance:
        # Automation's first tick only records where it starts from; the flows begin after it.
        for sensor in ("reevaluation", "model_registry"):
            wait_for(f"a first tick of the {sensor} sensor", partial(_ticks, instance, sensor), running, timeout=120)
    yield running
    left = running.stop()
    assert left == [], f"processes of the daemon left running: {left}"


def _ticks(instance, sensor: str, limit: int = 1) -> list:
    state = next((state for state in instance.all_instigator_state() if state.name == sensor), None)
    return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=limit)) if state else []


@pytest.fixture(scope="module")
def changed(evaluated, daemon) -> float:
    """Both changes made within seconds, as the weekly schedule and a user editing the registry
    may make them: a new revision of the local model's weights (touched, then observed by the
    `observe_models` job), and a model appended to the registry (after that job, which would
    otherwise add its partition before the registry sensor does). Returns when they began."""
    workspace, weights = evaluated
    since = time.time()
    weight_file = next(weights.glob("*.safetensors"))
    os.utime(weight_file, (since, since))
    workspace.run("observe_models")
    with workspace.registry.open("a") as registry:
        registry.write(f"  - name: {ADDED}\n    backend: baseline\n    seed: 1\n")
    return since


def test_an_appended_model_is_generated_evaluated_and_compared(evaluated, daemon, changed):
    workspace, _ = evaluated
    with DagsterInstance.from_config(str(workspace.root / "instance")) as instance:
        wait_for(f"a `model` partition for {ADDED}", lambda: ADDED in instance.get_dynamic_partitions("model"), daemon)
        keys = {partition_key(ADDED, task) for task in TASK_KEYS}
        predicted = wait_for(f"predictions of {ADDED} on its six tasks",
                             lambda: keys <= set(materialized_after(instance, "predictions", changed)) and materialized_after(instance, "predictions", changed),
                             daemon)
        generations = {run for key in keys for run in predicted[key]}
        assert len(generations) == 1, "the six tasks were not generated in one run"
        assert instance.get_run_by_id(generations.pop()).tags.get("dagster/sensor_name") == "model_registry", \
            "the appended model was not generated by the registry sensor's run"
        wait_for(f"parsed labels and metrics of {ADDED} on its six tasks",
                 lambda: keys <= set(materialized_after(instance, "metrics", changed)), daemon)
        records = wait_for(
            f"a comparison that includes {ADDED}",
            lambda: [r for r in instance.fetch_materializations(AssetKey("comparison"), limit=5).records
                     if r.timestamp > changed and re.search(rf"\| {re.escape(ADDED)} +\|", r.asset_materialization.metadata["table3"].value)],
            daemon,
        )
        assert "not evaluated" not in records[0].asset_materialization.metadata["table3"].value
        assert failed_runs(instance) == []


def test_a_new_revision_reruns_exactly_that_models_partitions(evaluated, daemon, changed):
    workspace, _ = evaluated
    with DagsterInstance.from_config(str(workspace.root / "instance")) as instance:
        keys = {partition_key(LOCAL, task) for task in TASK_KEYS}
        added = {partition_key(ADDED, task) for task in TASK_KEYS}
        predicted = wait_for(f"new predictions of {LOCAL} on its six tasks",
                             lambda: keys <= set(materialized_after(instance, "predictions", changed)) and materialized_after(instance, "predictions", changed),
                             daemon)
        assert len({run for key in keys for run in predicted[key]}) == 1, "the six tasks were not re-generated in one run"
        wait_for(f"new metrics of {LOCAL} on its six tasks", lambda: keys <= set(materialized_after(instance, "metrics", changed)), daemon)
        votes = {partition_key(ENSEMBLE, task) for task in TASK_KEYS}
        # The ensemble's labels after its member's new ones (those after the appended model's may come first).
        local_labels = last_materialized(instance, "parsed_labels", keys, changed)
        wait_for(f"new labels and metrics of the ensemble {ENSEMBLE} (a member's labels changed)",
                 lambda: votes <= set(materialized_after(instance, "ensemble_metrics", local_labels)), daemon)
        ensemble_done = last_materialized(instance, "ensemble_metrics", votes, local_labels)
        (compared,) = wait_for("a comparison after the ensemble's new metrics", lambda: comparisons_after(instance, ensemble_done), daemon)
        # One more automation tick, evaluated after the comparison: nothing else may follow.
        wait_for("an automation tick after the comparison",
                 lambda: [t for t in _ticks(instance, "reevaluation", limit=5) if t.timestamp > compared and t.end_timestamp], daemon)
        # Only the two changed models ran: the appended model's partitions (the other test) and these.
        for asset in ("predictions", "parsed_labels", "metrics"):
            others = set(materialized_after(instance, asset, changed)) - keys - added
            assert others == set(), f"{asset} re-ran for other models: {sorted(others)}"
        # Nor was any other model's run or backfill requested, even one not yet executed.
        since = datetime.fromtimestamp(changed, UTC)
        registered = [BASELINE, LOCAL, ADDED]
        runs = instance.get_runs(RunsFilter(created_after=since))
        assert any(run_models(run.tags, registered) == [LOCAL] for run in runs)
        # (the ensemble's own run covers its partitions, one run over their range)
        assert {model for run in runs for model in run_models(run.tags, registered)} - {ENSEMBLE} == {LOCAL, ADDED}
        asset_graph = defs.resolve_asset_graph()
        backfilled = {
            model_and_task(target.partition_key)[0]
            for backfill in instance.get_backfills(BulkActionsFilter(created_after=since))
            for target in backfill.get_asset_backfill_data(asset_graph).target_subset.iterate_asset_partitions()
            if target.partition_key and "|" in target.partition_key
        }
        # The ensemble re-runs on its own partitions (a member's labels changed); no other model does.
        assert backfilled <= {LOCAL, ADDED, ENSEMBLE}, f"backfills requested for other models: {sorted(backfilled - {LOCAL, ADDED, ENSEMBLE})}"
        assert failed_runs(instance) == []


def comparisons_after(instance, since: float) -> list[float]:
    """The timestamps of the comparison's materializations after `since`."""
    records = _records_after(instance, "comparison", since)
    return [max(record.timestamp for record in records)] if records else []

"""Generation as Slurm jobs, through Dagster, on a real single-node Slurm cluster (the `slurm`
fixture: Debian's slurmctld and slurmd, a node declaring 4 GPUs as a generic resource).

Four registry entries: the embedded model (1 GPU, partition debug), two 70B-shaped entries
of different engines (4 and 2 GPUs, partition gpu, held back by their own `--begin` option so
that they stay pending) and the baseline, which submits nothing. The fixtures run in order, sharing one workspace: a job
cancelled midway -> the run resumed -> the same model generated locally, without Slurm.

Slow: three engine starts of the embedded model (two in Slurm jobs, one local), and a job
cancelled while its engine starts.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import psutil
import pytest
from conftest import REPO, engine_events, engine_probe_env
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._grpc.client import DagsterGrpcClient
from dagster_graphql.client.client_queries import TERMINATE_RUN_JOB_MUTATION
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql
from support import TOKEN_VARIABLE, free_port, processes_with_token

from medassets.core.slurm import job_name
from medassets.defs.partitions import partition_key

pytestmark = pytest.mark.slow

MODEL, BIG, BIG_FP16, BASELINE, TASK = "smollm2-135m", "llama-70b-shaped", "llama-70b-shaped-fp16", "tfidf-logreg", "breast_cancer"
REGISTRY = f"""
models:
  - name: {MODEL}
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 16}}
    slurm: {{partition: debug, memory: 3G}}
  - name: {BIG}
    source: {{path: /models/Llama-3.3-70B-Instruct}}
    dtype: bfloat16
    tensor_parallel_size: 4
    slurm: {{partition: gpu, memory: 16G, options: ["--begin=now+3600"]}}
  - name: {BIG_FP16}
    source: {{path: /models/Llama-3.3-70B-Instruct}}
    dtype: float16
    tensor_parallel_size: 2
    slurm: {{partition: gpu, memory: 8G, options: ["--begin=now+3600"]}}
  - name: {BASELINE}
    backend: baseline
"""
PENDING_REPORT_S = 2
LOCATION = "medassets"  # the code server's code location
TERMINATED_TASK = "covid19_potential_case"  # no other test generates it: none of its answers is cached
CANCELLED_WITHIN_S = 30  # from the run's termination requested to its job out of squeue


def job_ids(slurm) -> list[str]:
    """Every job slurmctld still knows, ended ones included (for MinJobAge)."""
    lines = slurm.command("scontrol", "show", "job", "-o").splitlines()
    return [line.split()[0].removeprefix("JobId=") for line in lines if line.startswith("JobId=")]


def predictions(workspace, model: str) -> pd.DataFrame:
    return pd.read_parquet(workspace.asset_file("predictions", model, TASK))


@pytest.fixture(scope="module")
def engine_log(tmp_path_factory):
    return tmp_path_factory.mktemp("engine") / "events.log"


@pytest.fixture(scope="module")
def workspace(make_workspace, slurm, tmp_path_factory, engine_log):
    folder = tmp_path_factory.mktemp("slurm-settings")
    settings = folder / "slurm.yaml"
    settings.write_text(f"poll_interval_s: 0.5\npending_report_after_s: {PENDING_REPORT_S}\nwork_dir: {folder / 'work'}\n"
                        "defaults: {time_limit: '00:30:00', cpus_per_task: 2}\n")
    workspace = make_workspace(REGISTRY, extra_env={"MEDASSETS_SLURM": str(settings), **slurm.env(), **engine_probe_env(engine_log)})
    workspace.run(f"prepare_data:{TASK}", "prepare_embedded_model")
    return workspace


@pytest.fixture(scope="module")
def cancelled(workspace, slurm):
    """The embedded model's generate run, its Slurm job cancelled (scancel) once it has cached 5% of the answers."""
    total = len(pd.read_parquet(workspace.asset_file("split", TASK)).query("part == 'test'"))
    before = set(job_ids(slurm))
    run = workspace.start(f"generate:{MODEL}|{TASK}")
    deadline = time.monotonic() + 600
    while len(workspace.cached_answers()) < total // 20:
        assert run.process.poll() is None, f"the run ended before it cached an answer:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, "no answer cached within 10 minutes"
        time.sleep(0.05)
    (job_id,) = set(job_ids(slurm)) - before
    slurm.command("scancel", job_id)
    (report,) = run.wait(timeout=300)
    return SimpleNamespace(total=total, job_id=job_id, report=report, cached=workspace.cached_answers(), writes=workspace.cache_writes())


@pytest.fixture(scope="module")
def resumed(workspace, slurm, cancelled, engine_log):
    received_before = engine_events(engine_log).count("received")
    before = set(job_ids(slurm))
    job = workspace.start(f"generate:{MODEL}|{TASK}")
    (report,) = job.wait(timeout=600)
    (job_id,) = set(job_ids(slurm)) - before
    received = engine_events(engine_log).count("received") - received_before
    return SimpleNamespace(report=report, job_id=job_id, job=slurm.job(job_id), received=received, output=job.output)


def test_a_job_cancelled_midway_fails_the_run_naming_the_job_and_its_state(cancelled, slurm):
    assert 0 < len(cancelled.cached) < cancelled.total, "the cancel was meant to land midway"
    assert not cancelled.report["success"]
    (error,) = cancelled.report["errors"]
    assert f"Slurm job {cancelled.job_id} ended CANCELLED" in error
    assert "the next run generates only the rest" in error
    assert slurm.job(cancelled.job_id)["JobState"] == "CANCELLED"


def test_the_next_run_generates_only_the_missing_answers_in_a_job_asking_for_the_entry_s_resources(cancelled, resumed, workspace, slurm):
    assert resumed.report["success"], resumed.report["errors"]
    metadata = resumed.report["materializations"]["predictions"][f"{MODEL}|{TASK}"]
    assert (metadata["batch_cache_hits"], metadata["batch_cache_misses"]) == (len(cancelled.cached), cancelled.total - len(cancelled.cached))
    # What vLLM received in the job (engine_probe), not what medassets counted.
    assert resumed.received == cancelled.total - len(cancelled.cached)
    writes = workspace.cache_writes()
    assert {key: writes[key] for key in cancelled.writes} == cancelled.writes  # the finished answers were kept, not regenerated
    assert (metadata["slurm_job_id"], metadata["slurm_state"], metadata["slurm_node"]) == (resumed.job_id, "COMPLETED", resumed.job["NodeList"])
    # The job Slurm recorded asks for the entry's GPU, memory and partition.
    assert (resumed.job["Partition"], resumed.job["MinMemoryNode"]) == ("debug", "3G")
    assert resumed.job["TresPerNode"] == "gres:gpu:1"
    # The run's log holds the job's id, state and node, and the engine's progress relayed from the job.
    messages = [entry["message"] for entry in resumed.report["logs"]]
    assert any(f"Slurm job {resumed.job_id} RUNNING on {resumed.job['NodeList']}" in message for message in messages)
    assert any(f"{len(cancelled.cached)} of {cancelled.total} answers are cached" in message for message in messages)


def test_predictions_generated_in_a_slurm_job_equal_a_local_run_s(resumed, workspace, make_workspace, engine_log):
    local = make_workspace(REGISTRY, extra_env=engine_probe_env(engine_log))  # no MEDASSETS_SLURM: in the step
    (*_, report) = local.run(f"prepare_data:{TASK}", "prepare_embedded_model", f"generate:{MODEL}|{TASK}")
    assert "slurm_job_id" not in report["materializations"]["predictions"][f"{MODEL}|{TASK}"]
    pd.testing.assert_frame_equal(predictions(workspace, MODEL), predictions(local, MODEL))


def test_a_4_gpu_entry_s_job_asks_for_its_resources_is_reported_pending_and_cancelled_with_the_run(workspace, slurm):
    before = set(job_ids(slurm))
    run = workspace.start(f"generate:{BIG}|{TASK}")
    deadline = time.monotonic() + 120
    while not (submitted := set(job_ids(slurm)) - before) or "has been pending" not in run.output:
        assert run.process.poll() is None, f"the run ended while its job was pending:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, f"no pending job reported within 120 s:\n{run.output[-3000:]}"
        time.sleep(0.2)
    (job_id,) = submitted
    job = slurm.job(job_id)
    assert (job["JobState"], job["Reason"], job["Partition"], job["MinMemoryNode"]) == ("PENDING", "BeginTime", "gpu", "16G")
    assert job["TresPerNode"] == "gres:gpu:4"
    assert f"Slurm job {job_id} has been pending for" in run.output

    os.kill(run.process.pid, signal.SIGTERM)  # what terminating a run sends its process
    run.process.wait(timeout=120)
    assert job_id not in slurm.queued()
    assert slurm.job(job_id)["JobState"] == "CANCELLED"
    assert f"the step stopped before Slurm job {job_id} ended, so it was cancelled" in run.output


def test_the_jobs_of_two_engines_are_submitted_side_by_side_and_cancelled_together_with_the_run(workspace, slurm):
    """One step over two entries that need GPUs and share no engine: both jobs are submitted before
    either ends (one after the other, the first, held back for an hour, would hold the second back
    too), and terminating the run cancels both."""
    before = set(job_ids(slurm))
    run = workspace.start(f"generate:{BIG}|{TASK}..{BIG_FP16}|{TASK}")  # the two entries' partitions of TASK
    deadline = time.monotonic() + 120
    while len(submitted := set(job_ids(slurm)) - before) < 2:
        assert run.process.poll() is None, f"the run ended before submitting two jobs:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, f"{len(submitted)} of 2 jobs submitted within 120 s:\n{run.output[-3000:]}"
        time.sleep(0.2)
    assert {slurm.job(job_id)["JobState"] for job_id in submitted} == {"PENDING"}
    assert sorted(slurm.job(job_id)["TresPerNode"] for job_id in submitted) == ["gres:gpu:2", "gres:gpu:4"]

    os.kill(run.process.pid, signal.SIGTERM)  # what terminating a run sends its process
    run.process.wait(timeout=120)
    for job_id in submitted:
        assert slurm.job(job_id)["JobState"] == "CANCELLED"
        assert f"the step stopped before Slurm job {job_id} ended, so it was cancelled" in run.output


def test_a_run_stopped_before_sbatch_answers_leaves_no_job(workspace, slurm, tmp_path):
    slow = tmp_path / "slow-sbatch"  # Slurm's sbatch, answering a minute after it queued the job (a busy controller)
    slow.mkdir()
    (slow / "sbatch").write_text(f'#!/bin/sh\nqueued=$({shutil.which("sbatch")} "$@") || exit $?\nsleep 60\necho "$queued"\n')
    (slow / "sbatch").chmod(0o755)
    before = set(job_ids(slurm))
    saved = workspace.extra_env
    workspace.extra_env = saved | {"PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"}
    try:
        run = workspace.start(f"generate:{BIG}|{TASK}")
    finally:
        workspace.extra_env = saved
    deadline = time.monotonic() + 120
    while not (submitted := set(job_ids(slurm)) - before):
        assert run.process.poll() is None, f"the run ended before submitting its job:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, f"no job submitted within 120 s:\n{run.output[-3000:]}"
        time.sleep(0.2)
    os.kill(run.process.pid, signal.SIGTERM)  # while its step waits for sbatch's answer: the job's id unread
    run.process.wait(timeout=120)
    (job_id,) = submitted
    assert f"Slurm job {job_id} submitted" not in run.output
    assert slurm.job(job_id)["JobState"] == "CANCELLED"
    assert f"the step stopped before Slurm job {job_id} ended, so it was cancelled" in run.output


@contextlib.contextmanager
def code_server(workspace, token: str) -> Iterator[SimpleNamespace]:
    """`dagster api grpc` serving medassets' definitions on a free port of 127.0.0.1, as a deployment's
    code server serves them, in the workspace's environment with `token`, in a session of its own:
    its process and port, once it answers a ping; stopped with its process group at the end."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("dagster")), "api", "grpc", "-m", "medassets.definitions", "-a", "defs",
               "--host", "127.0.0.1", "--port", str(port), "--location-name", LOCATION]
    log = workspace.root / f"code-server-{port}.log"
    with log.open("w") as output:
        # SIGINT as from a terminal: a suite started in the background inherits it ignored, and the server,
        # which maps SIGTERM to SIGINT's handler, would ignore SIGTERM too.
        server = subprocess.Popen(command, cwd=REPO, env=workspace.env() | {TOKEN_VARIABLE: token}, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"the code server exited:\n{log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"the code server did not answer within 120 s; log: {log}"
            with contextlib.suppress(Exception):
                DagsterGrpcClient(port=port, host="127.0.0.1").ping("")
                break
            time.sleep(0.5)
        yield SimpleNamespace(process=server, port=port)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def graphql(context: WorkspaceProcessContext, query: str, variables: dict) -> dict:
    """What the UI's request gets from Dagster's GraphQL API."""
    result = execute_dagster_graphql(context.create_request_context(), query, variables=variables)
    assert not result.errors, result.errors
    return result.data


def slurm_job_named(slurm, name: str) -> str | None:
    """The id of the job not yet ended that is named `name`."""
    queued = (line.split("|", 1) for line in slurm.command("squeue", "--noheader", "--format=%i|%j").splitlines())
    return next((job_id for job_id, queued_name in queued if queued_name == name), None)


def run_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message or "" for entry in instance.all_logs(run_id)]


def test_a_running_job_is_cancelled_when_dagster_terminates_the_run(workspace, slurm):
    """A run launched from the launchpad, dequeued by the run queue's daemon code and executed by a
    code server (a process per step, as in a deployment), terminated from the UI (GraphQL
    `terminateRun`: the run launcher interrupts the run's process, which interrupts its step) while
    its step follows the RUNNING job of the embedded model."""
    workspace.run(f"prepare_data:{TERMINATED_TASK}")
    token = uuid.uuid4().hex
    with (code_server(workspace, token) as server, DagsterInstance.from_config(str(workspace.root / "instance")) as instance,
          WorkspaceProcessContext(instance, GrpcServerTarget(host="127.0.0.1", port=server.port, socket=None, location_name=LOCATION)) as dagster):
        selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "pipelineName": "generate"}
        tags = [{"key": "dagster/partition", "value": partition_key(MODEL, TERMINATED_TASK)}]
        launched = graphql(dagster, LAUNCH_PIPELINE_EXECUTION_MUTATION,
                           {"executionParams": {"selector": selector, "executionMetadata": {"tags": tags}}})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(dagster))  # the queue's daemon launches it
        # Its job RUNNING medassets.slurm_job, the step following it: the job's first line relayed to the run through Pipes.
        deadline = time.monotonic() + 300
        while not any("answers are cached" in message for message in run_messages(instance, run_id)):
            run = instance.get_run_by_id(run_id)
            assert not run.is_finished, f"the run ended {run.status.value} before its job relayed a line:\n" + "\n".join(run_messages(instance, run_id)[-20:])
            assert time.monotonic() < deadline, "no line relayed from the job within 300 s:\n" + "\n".join(run_messages(instance, run_id)[-20:])
            time.sleep(0.5)
        job_id = slurm_job_named(slurm, job_name(run_id, MODEL))
        assert job_id and slurm.job(job_id)["JobState"] == "RUNNING", f"Slurm job {job_id} of run {run_id} is not RUNNING"

        asked = time.monotonic()
        terminated = graphql(dagster, TERMINATE_RUN_JOB_MUTATION, {"runId": run_id})["terminateRun"]
        assert terminated["__typename"] == "TerminateRunSuccess", terminated
        while job_id in slurm.queued():
            assert time.monotonic() - asked < CANCELLED_WITHIN_S, f"Slurm job {job_id} still queued {CANCELLED_WITHIN_S} s after the run's termination"
            time.sleep(0.2)
        print(f"Slurm job {job_id} left the queue {time.monotonic() - asked:.1f} s after the termination was requested")
        assert slurm.job(job_id)["JobState"] == "CANCELLED"
        while not (run := instance.get_run_by_id(run_id)).is_finished:
            assert time.monotonic() - asked < 120, f"the run is still {run.status.value} 120 s after its termination"
            time.sleep(0.5)
        assert run.status == DagsterRunStatus.CANCELED
        assert any(f"the step stopped before Slurm job {job_id} ended, so it was cancelled" in message for message in run_messages(instance, run_id))
        # Nothing of the job is left: its processes (which inherit the token through sbatch) are gone.
        served = {server.process.pid} | {child.pid for child in psutil.Process(server.process.pid).children(recursive=True)}
        assert [process.pid for process in processes_with_token(token) if process.pid not in served] == []


def _jobs_submitted_after(slurm, before: set[str], run, timeout_s: float = 120) -> set[str]:
    """The jobs `run` (still running) submitted, not in `before`, once there is one."""
    deadline = time.monotonic() + timeout_s
    while not (submitted := set(job_ids(slurm)) - before):
        assert run.process.poll() is None, f"the run ended before submitting its job:\n{run.output[-3000:]}"
        assert time.monotonic() < deadline, f"no job submitted within {timeout_s:.0f} s:\n{run.output[-3000:]}"
        time.sleep(0.2)
    return submitted


def test_a_job_left_by_a_killed_run_is_cancelled_by_the_model_s_next_run(workspace, slurm):
    before = set(job_ids(slurm))
    killed = workspace.start(f"generate:{BIG}|{TASK}")
    submitted = _jobs_submitted_after(slurm, before, killed)
    killed.kill()  # SIGKILL to the run's processes: its step cannot cancel its job
    (orphan,) = submitted
    job = slurm.job(orphan)
    assert job["JobState"] == "PENDING"
    killed_run = job["JobName"].removeprefix("medassets-").removesuffix(f"-{BIG}")
    assert len(killed_run) == 36  # a run id

    before = set(job_ids(slurm))
    run = workspace.start(f"generate:{BIG}|{TASK}")
    _jobs_submitted_after(slurm, before, run)
    assert slurm.job(orphan)["JobState"] == "CANCELLED"
    os.kill(run.process.pid, signal.SIGTERM)
    run.process.wait(timeout=120)
    assert f"{BIG}: cancelled Slurm job {orphan} of run {killed_run}, which is gone" in run.output
    assert not set(slurm.queued()) & (submitted | {orphan})


def test_the_baseline_submits_nothing_and_generates_in_the_step(workspace, slurm):
    before = job_ids(slurm)
    (report,) = workspace.run(f"generate:{BASELINE}|{TASK}")
    assert job_ids(slurm) == before
    assert "slurm_job_id" not in report["materializations"]["predictions"][f"{BASELINE}|{TASK}"]
    split = pd.read_parquet(workspace.asset_file("split", TASK))
    answered = predictions(workspace, BASELINE)
    assert (answered["part"] == "test").sum() == (split["part"] == "test").sum()  # and its train rows' scores, for the cut-off


def test_the_machine_check_finds_the_settings_and_the_cluster(workspace):
    result = subprocess.run([sys.executable, "-m", "medassets.check"], env=workspace.env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok     Slurm (MEDASSETS_SLURM, when set)" in result.stdout

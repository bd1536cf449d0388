"""Runs executed in process (as `make run` executes them) whose process dies: failed, their pool slot
freed, and a run waiting for that slot told who holds it.

The holder is a real Dagster run in a process of its own (support.PoolHolder); the instance limits each
pool to one slot, as the repository's dagster.yaml does.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from support import PoolHolder

from medassets.core.processes import is_running
from medassets.defs.runs import PID_TAG, fail_dead_runs, owner_tags, wait_for_pools


def instance_folder(root: Path) -> Path:
    """A Dagster instance in `root` whose pools have one slot each."""
    (root / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {root / 'storage'}\nconcurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n"
    )
    return root


@pytest.fixture
def instance(tmp_path):
    with DagsterInstance.from_config(str(instance_folder(tmp_path))) as instance:
        yield instance


def test_a_run_whose_process_was_killed_is_failed_and_its_slot_freed(tmp_path, instance):
    holder = PoolHolder(tmp_path)
    try:
        said = []
        assert fail_dead_runs(instance, said.append) == []  # alive: left alone
        (record,) = instance.get_run_records()
        assert record.dagster_run.tags[PID_TAG] == str(holder.process.pid)
        assert instance.event_log_storage.get_concurrency_info("gpu").assigned_run_ids == {record.dagster_run.run_id}
    finally:
        holder.kill()
    run_id = record.dagster_run.run_id
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED  # what a killed in-process run leaves

    assert fail_dead_runs(instance, said.append) == [run_id]
    assert len(said) == 1 and "cleaned up 1 dead run" in said[0] and run_id in said[0]
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
    failure = next(event for event in instance.all_logs(run_id) if event.dagster_event and event.dagster_event.is_run_failure)
    assert f"The process that ran it ({holder.process.pid} on " in failure.message
    info = instance.event_log_storage.get_concurrency_info("gpu")
    assert info.claimed_slots == [] and info.pending_steps == []
    assert fail_dead_runs(instance, said.append) == [] and len(said) == 1  # once


def test_waiting_for_a_slot_names_its_holder_until_the_holder_dies(tmp_path, instance):
    holder = PoolHolder(tmp_path)
    (record,) = instance.get_run_records()
    killer = threading.Timer(3.5, holder.kill)
    killer.start()
    said = []
    started = time.monotonic()
    try:
        wait_for_pools(instance, {"gpu"}, said.append, every_s=1, poll_s=0.1)
    finally:
        killer.cancel()
        holder.kill()
    assert time.monotonic() - started < 10
    waiting = [line for line in said if line.startswith("medassets: waiting for a slot of the gpu pool, held by run ")]
    assert len(waiting) >= 3, said  # said again each `every_s`
    assert all(f"run {record.dagster_run.run_id} (job holder, STARTED, process {holder.process.pid} on " in line for line in waiting)
    assert "cleaned up 1 dead run" in said[-1]  # then the slot was free


def test_a_process_started_after_the_run_is_not_its_process():
    me = os.getpid()
    assert is_running(me, time.time())
    assert not is_running(me, time.time() - 3600)  # a pid reused since: another process
    child = subprocess.Popen(["true"])
    child.wait()
    assert not is_running(child.pid, time.time())


def test_owner_tags_name_this_process():
    assert owner_tags()[PID_TAG] == str(os.getpid())

"""Runs that `make run` executes in its own process: tagged with that process, failed when it is
gone, and waiting for a concurrency pool's slot in the open.

An in-process run has no run monitor: a run whose process was killed (SIGKILL, the OOM killer, a
closed terminal) would stay STARTED and keep its pool slot, and the next run would wait for it
forever. Dagster's own wait for a slot, in process, also sleeps for no time (it polls at 100% CPU)
and takes SIGTERM only once a step runs: `wait_for_pools` waits first, where a signal ends it.
"""

import os
import socket
import time
from collections.abc import Callable

from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter

from medassets.core.processes import is_running

HOST_TAG = "medassets/host"
PID_TAG = "medassets/pid"


def owner_tags() -> dict[str, str]:
    """The tags of a run executed by this process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_dead_runs(instance: DagsterInstance, say: Callable[[str], None] = print) -> list[str]:
    """Marks failed the runs of this host still in progress whose process is gone, frees their pool
    slots, and says so in one line; their ids."""
    filters = RunsFilter(
        statuses=[DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING],
        tags={HOST_TAG: socket.gethostname()},
    )
    dead = [record for record in instance.get_run_records(filters) if _process_gone(record)]
    for record in dead:
        run = record.dagster_run
        instance.report_run_failed(run, f"The process that ran it ({run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) is gone: killed or crashed.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    if dead:
        say(f"medassets: cleaned up {len(dead)} dead run(s) (process gone, marked failed, pool slots freed): "
            + ", ".join(f"{record.dagster_run.run_id} ({record.dagster_run.job_name})" for record in dead))
    return [record.dagster_run.run_id for record in dead]


def is_gone(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run is unknown to the instance, finished, or executed by a process of this host that is gone."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.dagster_run.is_finished:
        return True
    return record.dagster_run.tags.get(HOST_TAG) == socket.gethostname() and _process_gone(record)


def _process_gone(record: RunRecord) -> bool:
    return not is_running(int(record.dagster_run.tags[PID_TAG]), record.create_timestamp.timestamp())


def wait_for_pools(instance: DagsterInstance, pools: set[str], say: Callable[[str], None] = print, every_s: float = 30,
                   poll_s: float = 1) -> None:
    """Returns once each pool has a free slot and no run waiting ahead, saying every `every_s` which
    runs hold or wait for it; a holder whose process dies meanwhile is failed (`fail_dead_runs`)."""
    said_at = None
    while True:
        fail_dead_runs(instance, say)
        busy = {pool: _holders(instance, pool) for pool in sorted(pools)}
        busy = {pool: holders for pool, holders in busy.items() if holders}
        if not busy:
            return
        if said_at is None or time.monotonic() - said_at >= every_s:
            said_at = time.monotonic()
            for pool, holders in busy.items():
                say(f"medassets: waiting for a slot of the {pool} pool, held by " + ", ".join(_describe(instance, run_id) for run_id in holders))
        time.sleep(poll_s)


def _holders(instance: DagsterInstance, pool: str) -> list[str]:
    """The runs that hold the pool's slots when all are taken, or wait for one ahead; none when a slot is free."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    full = info.limit is not None and info.assigned_step_count >= info.limit
    return sorted(info.assigned_run_ids | info.pending_run_ids) if full or info.pending_run_ids else []


def _describe(instance: DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (unknown to this instance)"
    where = f", process {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}" if PID_TAG in run.tags else ""
    return f"run {run_id} (job {run.job_name}, {run.status.value}{where})"

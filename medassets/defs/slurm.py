"""Generation on a Slurm cluster. With MEDASSETS_SLURM set, the `predictions` step submits one
job per engine that needs GPUs (the models sharing it, one after the other), asking for the
entry's GPUs and its `slurm:` settings over the deployment's, and follows it through Dagster
Pipes (the jobs of several engines submitted together and followed side by side): the job's
log lines (the engine's progress) reach the run's log, its state and node are logged and
recorded in the predictions' metadata. A job's name holds its run's id: a step stopped from
`sbatch` on (the run terminated) cancels its jobs, and the next run of a model cancels the
model's jobs whose run is gone (killed with its step). A job that does not complete fails the
step, and every answer it finished stays in the response cache for the next run.

The job reads its prompts from, and writes its predictions to, a folder under `work_dir` that
the step and the compute nodes share, removed when the step is done with it.
"""

from __future__ import annotations

import pickle
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dagster import AssetExecutionContext, PipesFileContextInjector, PipesFileMessageReader, open_pipes_session

from medassets import paths
from medassets.core.cache import Cache
from medassets.core.slurm import (
    JobStatus, SlurmDeployment, SlurmError, batch_script, cancel_named, job_name, job_request, job_status, queued_jobs, run_of_job, sbatch_arguments,
    submit,
)
from medassets.defs.runs import is_gone
from medassets.engines import Batch, Predictions
from medassets.engines.base import GeneratingBackend


def predict_in_slurm_job(
    context: AssetExecutionContext, backend: GeneratingBackend, batches: Sequence[Batch], deployment: SlurmDeployment,
    *, models_dir: Path, open_cache: Callable[[], Cache],
) -> dict[str, Predictions]:
    """`backend.predict(batches)` in a Slurm job; `open_cache` must pickle and reach the same cache from a compute node."""
    first = batches[0].spec
    names = ", ".join(batch.spec.name for batch in batches)
    _cancel_jobs_of_gone_runs(context, first.name)
    work_dir = Path(deployment.work_dir) if deployment.work_dir else paths.state_dir() / "slurm"
    folder = work_dir / f"{context.run_id}-{first.name}"
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)  # the work file holds the prompts: clinical notes
    work, result = folder / "work.pickle", folder / "result.pickle"
    work.touch(mode=0o600)
    work.write_bytes(pickle.dumps((backend, list(batches), models_dir, open_cache)))
    request = job_request(deployment.defaults, first.slurm)
    slurm_name = job_name(context.run_id, first.name)
    arguments = sbatch_arguments(request, gpus=first.gpus, job_name=slurm_name, output=work_dir / "medassets-%j.out")
    try:
        with open_pipes_session(
            context, PipesFileContextInjector(str(folder / "context.json")), PipesFileMessageReader(str(folder / "messages.jsonl")),
        ) as session:
            script = batch_script(
                python=deployment.python or sys.executable, setup=deployment.setup,
                environment=session.get_bootstrap_env_vars(), arguments=[str(work), str(result)],
            )
            try:
                job_id = submit(arguments, script)
                context.log.info(f"{names}: Slurm job {job_id} submitted: sbatch {shlex.join(arguments[1:])}")
                status = _follow(context, job_id, names, deployment)
            except BaseException:  # the run terminated, Slurm unreachable: from `sbatch` on, the job is found by its name
                _cancel(context, slurm_name, names)
                raise
        errors = [message["error"] for message in session.get_custom_messages() if isinstance(message, dict) and "error" in message]
        if status.state != "COMPLETED" or not result.exists():
            raise SlurmError(
                f"{names}: Slurm job {job_id} ended {status.state} on {status.node or 'no node'} (exit code {status.exit_code}, "
                f"reason {status.reason}){': ' + errors[-1] if errors else ''}. Every answer it finished is in the response "
                f"cache: the next run generates only the rest. The job's output: {work_dir / f'medassets-{job_id}.out'}"
            )
        predictions = pickle.loads(result.read_bytes())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    job = {"slurm_job_id": job_id, "slurm_node": status.node, "slurm_state": status.state}
    return {name: Predictions(predicted.frames, predicted.metadata | job) for name, predicted in predictions.items()}


def _follow(context: AssetExecutionContext, job_id: str, names: str, deployment: SlurmDeployment) -> JobStatus:
    """The job's state, logged as it changes, until it ends; a job pending long is reported."""
    state, queued_at, report_at = None, time.monotonic(), deployment.pending_report_after_s
    while True:
        status = job_status(job_id)
        if status.state != state:
            state = status.state
            context.log.info(f"{names}: Slurm job {job_id} {state}" + (f" on {status.node}" if status.node else ""))
        if status.ended:
            return status
        waited = time.monotonic() - queued_at
        if state == "PENDING" and waited >= report_at:
            context.log.warning(f"{names}: Slurm job {job_id} has been pending for {waited:.0f} s (reason: {status.reason})")
            report_at += deployment.pending_report_after_s
        time.sleep(deployment.poll_interval_s)


def cancel_jobs(context: AssetExecutionContext, groups: Sequence[Sequence[Batch]]) -> None:
    """Cancels the step's jobs of these engine groups (each a job named after its first entry),
    those still queued or running; the threads following them then see them end."""
    for batches in groups:
        _cancel(context, job_name(context.run_id, batches[0].spec.name), ", ".join(batch.spec.name for batch in batches))


def _cancel(context: AssetExecutionContext, name: str, names: str) -> None:
    """Cancels the step's job and waits until Slurm has ended it, so that a stopped step leaves none."""
    try:
        for job_id in cancel_named(name):
            context.log.warning(f"{names}: the step stopped before Slurm job {job_id} ended, so it was cancelled")
    except SlurmError as exc:
        context.log.error(f"{names}: Slurm job {name} could not be cancelled: {exc}")


def _cancel_jobs_of_gone_runs(context: AssetExecutionContext, model: str) -> None:
    """Cancels the model's jobs whose run is gone (killed with its step, say), before the model's new job."""
    for name in set(queued_jobs().values()):
        run_id = run_of_job(name, model)
        if run_id and run_id != context.run_id and is_gone(context.instance, run_id):
            for job_id in cancel_named(name):
                context.log.warning(f"{model}: cancelled Slurm job {job_id} of run {run_id}, which is gone")

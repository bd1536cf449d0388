"""Generation as Slurm jobs: the deployment's settings, the `sbatch` request of a model's job,
its batch script, and the job's state, through Slurm's own commands (`sbatch`, `scontrol`,
`scancel`, found on PATH, configured as the cluster configures them).

The deployment's settings are a YAML file named by MEDASSETS_SLURM; with it, every model that
needs GPUs generates in a Slurm job of its own (see `defs/slurm.py`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from medassets.core.registry import Settings, SlurmRequest

# Every state in which a job has ended (Slurm's own names); any other is pending or running.
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"})
COMMAND_TIMEOUT_S = 60
CANCEL_WAIT_S = 60


class SlurmError(RuntimeError):
    """A Slurm command that failed, a settings file that cannot be used, or a job that did not complete."""


class SlurmDeployment(Settings):
    """The deployment's Slurm settings (the file MEDASSETS_SLURM names)."""

    defaults: SlurmRequest = Field(
        default_factory=SlurmRequest, description="What every job asks for unless the model's registry entry says otherwise (its `slurm:`)."
    )
    python: str | None = Field(
        None, description="The Python interpreter of medassets' environment on the compute nodes, e.g. "
        "/shared/medassets/.venv/bin/python; default: the one running the Dagster step (a shared filesystem).",
    )
    setup: tuple[str, ...] = Field(
        (), strict=False, description="Shell lines the job runs first, e.g. `module load cuda/12.4`; default none.",
    )
    work_dir: str | None = Field(
        None, description="A folder that the Dagster step and the compute nodes both see, for each job's input, "
        "result, Pipes messages and output log; default `slurm/` under MEDASSETS_HOME.",
    )
    poll_interval_s: float = Field(5.0, gt=0, strict=False, description="Seconds between two looks at a job's state; default 5.")
    pending_report_after_s: float = Field(
        300.0, gt=0, strict=False, description="A job pending this many seconds is reported in the run's log, and again "
        "after each as many more; default 300.",
    )


def load_deployment(path: Path) -> SlurmDeployment:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SlurmError(f"{path}: cannot read the Slurm settings (MEDASSETS_SLURM): {exc}") from exc
    try:
        return SlurmDeployment.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise SlurmError(f"{path}: `{field}`: {first['msg']} (Slurm settings, MEDASSETS_SLURM)") from None


def job_request(defaults: SlurmRequest, entry: SlurmRequest) -> SlurmRequest:
    """The entry's request over the deployment's defaults; their extra options, the defaults' first."""
    chosen = {name: getattr(entry, name) if getattr(entry, name) is not None else getattr(defaults, name) for name in SlurmRequest.model_fields}
    return SlurmRequest.model_validate(chosen | {"options": defaults.options + entry.options})


def sbatch_arguments(request: SlurmRequest, *, gpus: int, job_name: str, output: Path) -> list[str]:
    """`sbatch`'s arguments for one job on one node: GPUs as a generic resource, then the request's settings."""
    arguments = ["--parsable", f"--job-name={job_name}", f"--output={output}", "--nodes=1", "--ntasks=1"]
    arguments += [f"--gres=gpu:{gpus}"] if gpus else []
    flags = {"partition": "--partition", "account": "--account", "qos": "--qos", "constraint": "--constraint",
             "memory": "--mem", "time_limit": "--time", "cpus_per_task": "--cpus-per-task"}
    arguments += [f"{flag}={getattr(request, field)}" for field, flag in flags.items() if getattr(request, field) is not None]
    return arguments + list(request.options)


def batch_script(*, python: str, setup: Sequence[str], environment: Mapping[str, str], arguments: Sequence[str]) -> str:
    """The job's script: the deployment's setup lines, then `python -m medassets.slurm_job ARGUMENTS`."""
    exports = [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
    command = shlex.join([python, "-m", "medassets.slurm_job", *arguments])
    return "\n".join(["#!/bin/bash", "set -e", *setup, *exports, f"exec {command}", ""])


def _slurm(command: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except FileNotFoundError:
        raise SlurmError(f"`{command[0]}` is not on PATH: generation on Slurm needs Slurm's client commands where the Dagster step runs") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{shlex.join(command[:2])}` gave no answer in {COMMAND_TIMEOUT_S} s: is slurmctld reachable?") from None
    if done.returncode != 0:
        raise SlurmError(f"`{shlex.join(command)}` failed (exit code {done.returncode}): {' '.join(done.stderr.split())}")
    return done.stdout


def job_name(run_id: str, model: str) -> str:
    """The name of the job that a run submits for a model (the first of those it generates for)."""
    return f"medassets-{run_id}-{model}"


def run_of_job(name: str, model: str) -> str | None:
    """The run that submitted the job named `name` for `model`, if `job_name` named it."""
    found = re.fullmatch(rf"medassets-([0-9a-f-]{{36}})-{re.escape(model)}", name)
    return found[1] if found else None


def queued_jobs() -> dict[str, str]:
    """This user's jobs not yet ended, id to name."""
    return dict(line.split("|", 1) for line in _slurm(["squeue", "--me", "--noheader", "--format=%i|%j"]).splitlines() if "|" in line)


def cancel_named(name: str) -> list[str]:
    """Cancels this user's jobs named `name` (one whose id was never read, as when `sbatch` was
    interrupted, included) and waits until Slurm has ended them; their ids."""
    ids = [job_id for job_id, queued in queued_jobs().items() if queued == name]
    if ids:
        _slurm(["scancel", *ids])
    deadline = time.monotonic() + CANCEL_WAIT_S
    while any(not job_status(job_id).ended for job_id in ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    return ids


def submit(arguments: Sequence[str], script: str) -> str:
    """The id of the job `sbatch` queued for this script."""
    return _slurm(["sbatch", *arguments], stdin=script).strip().split(";")[0]


def ping() -> None:
    """Raises unless the cluster's controller answers (`scontrol ping`)."""
    _slurm(["scontrol", "ping"])


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: str  # Slurm's: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT...
    node: str  # empty until it runs
    reason: str  # why it is pending, or why it ended; "None" otherwise
    exit_code: str  # "code:signal"

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def scontrol_fields(line: str) -> dict[str, str]:
    """`scontrol show job -o` output as fields; a value may hold `=` (TRES=cpu=1,mem=1G), so each
    space-separated token is split at its first."""
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def job_status(job_id: str) -> JobStatus:
    fields = scontrol_fields(_slurm(["scontrol", "show", "job", "-o", job_id]))
    state = fields.get("JobState", "")
    node = fields.get("BatchHost") or fields.get("NodeList", "")
    return JobStatus(job_id, state.split()[0] if state else "UNKNOWN", "" if node == "(null)" else node,
                     fields.get("Reason", ""), fields.get("ExitCode", ""))

"""`python -m medassets.run` (what `make run` calls) end to end with a baseline-only registry.

Hermetic: DAGSTER_HOME is a temporary folder holding a copy of the repository's
dagster.yaml, whose relative storage paths resolve in the working directory, so the
command runs there; MEDASSETS_HOME and MEDASSETS_REGISTRY point into it too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import small_datasets
from support import TOKEN_VARIABLE, PoolHolder, processes_with_token

from medassets.tasks import TASK_KEYS, TASKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # every job of `make run`, in a child process
def test_run_materializes_everything_and_prints_table3(tmp_path):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - name: tfidf-logreg\n    backend: baseline\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDASSETS_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(tmp_path), "MEDASSETS_HOME": str(tmp_path / "state"), "MEDASSETS_REGISTRY": str(registry)}

    result = subprocess.run(
        [sys.executable, "-m", "medassets.run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("F1 by model and task. Table 3: Precision, recall and F1"))
    end = next(n for n, line in enumerate(lines) if line.startswith("Every table in full"))  # then paths, as long as they are
    assert max(len(line) for line in lines[start:end]) <= 100  # an ordinary terminal
    header = next(line for line in lines if line.startswith("Model "))
    assert header.split() == ["Model", *(str(n) for n in range(1, len(TASK_KEYS) + 1)), "Invalid"]
    row = lines[lines.index(header) + 2].split()  # after the dashes
    table3 = pd.read_csv(tmp_path / "state" / "reports" / "table3.csv")
    assert row == ["tfidf-logreg", *(cell.split(" ")[0] for cell in table3["F1 tfidf-logreg"]), "0"]
    assert all(re.fullmatch(r"\d\.\d\d", f1) for f1 in row[1:-1]), row
    # the baseline gives scores: its AUROC beside its F1
    auroc_header = next(n for n, line in enumerate(lines) if line.startswith("AUROC of the models that give scores"))
    auroc_row = lines[auroc_header + 4].split()  # after the blank line, header and dashes
    assert auroc_row == ["tfidf-logreg", *(cell.split(" ")[0] for cell in table3["AUROC tfidf-logreg"])]
    printed = " ".join(result.stdout.split())
    assert "Tasks: " + "; ".join(f"{n} {TASKS[task].title}" for n, task in enumerate(TASK_KEYS, start=1)) + "." in printed
    assert "Paired F1 differences" not in printed  # one model: no pair
    accounting = next(n for n, line in enumerate(lines) if line.startswith("Model ") and "Reasoning" in line)
    assert lines[accounting + 2].split()[:2] == ["tfidf-logreg", "1"]  # the accounting, in task order
    # the runs went to the temporary instance, the reports to the temporary state folder
    assert (tmp_path / ".dagster" / "storage").is_dir()
    assert (tmp_path / "state" / "reports" / "table3.csv").is_file()
    assert len(list((tmp_path / "state" / "assets" / "metrics" / "tfidf-logreg").glob("*.parquet"))) == len(TASK_KEYS)


def test_run_requires_dagster_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run([sys.executable, "-m", "medassets.run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "set DAGSTER_HOME" in result.stderr


def run_command(workspace, token: str) -> dict:
    """What starts `python -m medassets.run` on `workspace` with a Dagster instance in its folder
    configured by the repository's dagster.yaml (the `gpu` pool's one slot), marked by `token`."""
    shutil.copy(ROOT / "dagster.yaml", workspace.root / "dagster.yaml")
    env = workspace.env() | {"DAGSTER_HOME": str(workspace.root), TOKEN_VARIABLE: token}
    return {"args": [sys.executable, "-m", "medassets.run"], "cwd": workspace.root, "env": env, "start_new_session": True}


def described(processes: list[psutil.Process]) -> list[str]:
    """Each live process's pid and command line."""
    found = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(f"{process.pid} {' '.join(process.cmdline())[:160]}")
    return found


def wait_for_line(log: Path, process: subprocess.Popen, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"medassets.run ended before printing {text!r}:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s:.0f} s"
        time.sleep(0.2)


@pytest.mark.slow  # the data jobs of `make run`, then a wait for the pool
def test_run_waiting_for_a_pool_slot_names_its_holder_and_ends_on_sigterm(make_workspace, tmp_path):
    workspace = make_workspace("models:\n  - name: tfidf-logreg\n    backend: baseline\n", datasets=small_datasets(tmp_path))
    token = uuid.uuid4().hex
    command = run_command(workspace, token)
    holder = PoolHolder(workspace.root)
    log = workspace.root / "run.log"
    try:
        with log.open("w") as output:  # SIGINT ignored, as a shell leaves it for a command started in the background
            process = subprocess.Popen(**command, stdout=output, stderr=subprocess.STDOUT,
                                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        wait_for_line(log, process, "medassets: waiting for a slot of the gpu pool, held by run ", timeout_s=300)
        assert f"(job holder, STARTED, process {holder.process.pid} on " in log.read_text()
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert time.monotonic() - signalled < 10
        assert described(processes_with_token(token)) == []
    finally:
        holder.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


# Two engines (the second entry's shorter context is an engine setting), so each generates in a process of its own.
EMBEDDED_MODELS = ("smollm2-135m", "smollm2-135m-short-context")
EMBEDDED_REGISTRY = f"""
models:
  - name: {EMBEDDED_MODELS[0]}
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 8}}
  - name: {EMBEDDED_MODELS[1]}
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 8}}
    max_model_len: 1024
"""


@pytest.mark.slow  # three `make run`s on the embedded model's real vLLM engines, on small datasets
def test_run_stopped_or_killed_while_generating_is_cleaned_up_by_the_next_which_leaves_no_process(make_workspace, tmp_path):
    workspace = make_workspace(EMBEDDED_REGISTRY, datasets=small_datasets(tmp_path))
    engine_started = "Initializing a V1 LLM engine"  # in the generate run, holding the gpu slot, in a process of its own
    stopped_log, token = workspace.root / "stopped.log", uuid.uuid4().hex
    with stopped_log.open("w") as output:
        stopped = subprocess.Popen(**run_command(workspace, token), stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_line(stopped_log, stopped, engine_started, timeout_s=600)
        signalled = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        stopped.wait(timeout=60)
        assert time.monotonic() - signalled < 10
        assert described(processes_with_token(token)) == []
        assert "Traceback" not in stopped_log.read_text(errors="replace")  # multiprocessing's cleanup at exit included
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stopped.pid, signal.SIGKILL)

    killed_log = workspace.root / "killed.log"
    with killed_log.open("w") as output:
        killed = subprocess.Popen(**run_command(workspace, uuid.uuid4().hex), stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_line(killed_log, killed, engine_started, timeout_s=600)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # the OOM killer, or a closed terminal
        killed.wait()

    token = uuid.uuid4().hex
    result = subprocess.run(**run_command(workspace, token), capture_output=True, text=True, timeout=900)
    left = described(processes_with_token(token))  # at the moment it returns
    assert result.returncode == 0, result.stderr[-3000:]
    assert left == []
    (cleaned,) = [line for line in result.stdout.splitlines() if line.startswith("medassets: cleaned up ")]
    assert cleaned.startswith("medassets: cleaned up 1 dead run(s) (process gone, marked failed, pool slots freed): ") and "(generate)" in cleaned
    for model in EMBEDDED_MODELS:  # every task evaluated
        row = next(line for line in result.stdout.splitlines() if line.startswith(f"{model} ")).split()
        assert len(row) == len(TASK_KEYS) + 2 and all(re.fullmatch(r"\d\.\d\d", f1) for f1 in row[1:-1]), row

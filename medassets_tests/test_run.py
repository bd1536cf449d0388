"""`python -m medassets.run` (what `make run` calls) end to end with a baseline-only registry.

Hermetic: DAGSTER_HOME is a temporary folder holding a copy of the repository's
dagster.yaml, whose relative storage paths resolve in the working directory, so the
command runs there; MEDASSETS_HOME and MEDASSETS_REGISTRY point into it too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medassets.tasks import TASK_KEYS, TASKS

ROOT = Path(__file__).resolve().parents[1]
CELL = r"\d\.\d\d \(\d\.\d\d-\d\.\d\d\)"


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
    header = next(line for line in lines if line.startswith("| Task "))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Task", "Precision tfidf-logreg", "Recall tfidf-logreg", "F1 tfidf-logreg", "Invalid tfidf-logreg",
    ]
    start = lines.index(header) + 2  # after the separator line
    rows = lines[start:start + len(TASK_KEYS)]
    assert [row.split("|")[1].strip() for row in rows] == [TASKS[task].title for task in TASK_KEYS]
    assert all(re.fullmatch(rf"\| [^|]+ \| {CELL} +\| {CELL} +\| {CELL} +\| +0 \|", row) for row in rows), rows
    # the runs went to the temporary instance, the reports to the temporary state folder
    assert (tmp_path / ".dagster" / "storage").is_dir()
    assert (tmp_path / "state" / "reports" / "table3.csv").is_file()
    assert len(list((tmp_path / "state" / "assets" / "metrics" / "tfidf-logreg").glob("*.parquet"))) == len(TASK_KEYS)


def test_run_requires_dagster_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run([sys.executable, "-m", "medassets.run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "set DAGSTER_HOME" in result.stderr

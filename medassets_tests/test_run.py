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

import pandas as pd
import pytest

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
    # the runs went to the temporary instance, the reports to the temporary state folder
    assert (tmp_path / ".dagster" / "storage").is_dir()
    assert (tmp_path / "state" / "reports" / "table3.csv").is_file()
    assert len(list((tmp_path / "state" / "assets" / "metrics" / "tfidf-logreg").glob("*.parquet"))) == len(TASK_KEYS)


def test_run_requires_dagster_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run([sys.executable, "-m", "medassets.run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "set DAGSTER_HOME" in result.stderr

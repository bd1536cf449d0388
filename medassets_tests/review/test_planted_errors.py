"""The walkthrough of docs/review.md, end to end: the sample data's planted label errors of one
task, judged `wrong` through the review page's form (the real server, over HTTP, with its access
token), become that task's adjudicated gold labels, and the metrics that the analysis settings
file points at them (`gold: adjudicated`) equal scikit-learn's on the corrected labels. The model
is the supervised baseline (no LLM); the Dagster runs are in process, on an ephemeral instance."""

from __future__ import annotations

import csv
import os
import re
import sys

import httpx
import pandas as pd
import pytest
from dagster import DagsterInstance
from sklearn.metrics import f1_score, precision_score, recall_score
from support import free_port, server_process

from medassets import paths
from medassets.definitions import defs

TASK = "breast_cancer"
MODEL = "tfidf-logreg"
TOKEN = "access-token-of-the-walkthrough"


def run(job: str, instance: DagsterInstance, **kwargs) -> None:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    assert result.success, job


def planted_in_test_split(split: pd.DataFrame) -> dict[str, int]:
    """The planted errors of TASK that the review page lists (its test split): id -> the label the text deserves."""
    with (paths.DATA_DIR / "samples" / "label_errors.csv").open(newline="") as answer_key:
        planted = {row["id"]: int(row["correct"]) for row in csv.DictReader(answer_key) if row["task"] == TASK}
    tested = set(split.loc[split["part"] == "test", "id"])
    return {item: label for item, label in planted.items() if item in tested}


def test_adjudicating_the_planted_errors_through_the_form_corrects_the_metrics(tmp_path, monkeypatch):
    home, registry, analysis = tmp_path / "state", tmp_path / "models.yaml", tmp_path / "analysis.yaml"
    registry.write_text(f"models:\n  - name: {MODEL}\n    backend: baseline\n")
    analysis.write_text("gold: adjudicated\n")
    for name, value in {"MEDASSETS_HOME": home, "MEDASSETS_REGISTRY": registry, "MEDASSETS_ANALYSIS": analysis}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("MEDASSETS_DATASETS", raising=False)
    key = f"{MODEL}|{TASK}"
    with DagsterInstance.ephemeral() as instance:
        run("prepare_data", instance, partition_key=TASK)
        instance.add_dynamic_partitions("model", [MODEL])
        run("observe_models", instance)
        run("generate", instance, partition_key=key)
        run("evaluate", instance, partition_key=key)
        original = pd.read_parquet(home / "assets" / "metrics" / MODEL / f"{TASK}.parquet").iloc[0]
        planted = planted_in_test_split(pd.read_parquet(home / "assets" / "split" / f"{TASK}.parquet"))
        assert len(planted) >= 2

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, MEDASSETS_REVIEW_TOKEN=TOKEN)  # this test's MEDASSETS_HOME and registry
        command = [sys.executable, "-m", "medassets.review", "--port", str(port)]
        with server_process(command, tmp_path / "review.log", f"{base}/?token={TOKEN}", 120, "the review server", env=env), \
                httpx.Client(base_url=base) as reviewer:
            assert reviewer.get(f"/?token={TOKEN}").status_code == 303
            for item in planted:
                page = reviewer.get(f"/tasks/{TASK}/items/{item}").text
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
                form = {"verdict": "wrong", "reason": "annotation error", "comment": "", "reviewer": "ana", "csrf_token": csrf}
                posted = reviewer.post(f"/tasks/{TASK}/items/{item}/adjudications", data=form, headers={"origin": base})
                assert posted.status_code == 303, posted.text

        run("adjudicate", instance, partition_key=TASK)
        run("evaluate", instance, partition_key=key)  # no run config: the analysis settings file says adjudicated

    labels = pd.read_parquet(home / "assets" / "parsed_labels" / MODEL / f"{TASK}.parquet")
    corrected = labels["gold"].copy()
    for item, label in planted.items():
        corrected[labels["id"] == item] = label
    assert (corrected != labels["gold"]).sum() == len(planted)
    metrics = pd.read_parquet(home / "assets" / "metrics" / MODEL / f"{TASK}.parquet").iloc[0]
    predicted = labels["label"].clip(lower=0)
    assert metrics["gold"] == "adjudicated"
    assert metrics[["precision", "recall", "f1"]].tolist() == pytest.approx(
        [precision_score(corrected, predicted), recall_score(corrected, predicted), f1_score(corrected, predicted)]
    )
    assert metrics["f1"] != pytest.approx(original["f1"])  # the planted errors moved F1

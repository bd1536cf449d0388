"""Beyond the paper, through Dagster on real vLLM: constrained answers, a 2-shot prompt, an
ensemble, McNemar's test in the comparison, the error analysis, and the offline HTML report
opened in a real Chromium. Small data: the first rows of each class of the samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_datasets
from dagster_runs import generate_range

from medassets.core.ensemble import vote
from medassets.core.metrics import holm, mcnemar
from medassets.core.prompts import answer_phrases
from medassets.defs.partitions import partition_key
from medassets.core.comparison import NO_SCORES
from medassets.tasks import TASK_KEYS, TASKS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

FREE, CONSTRAINED, TWO_SHOT, BASELINE, ENSEMBLE = "llm", "llm-constrained", "llm-2shot", "tfidf", "vote"
GENERATED = (FREE, CONSTRAINED, TWO_SHOT)
MODELS = (*GENERATED, BASELINE, ENSEMBLE)
REGISTRY = f"""
models:
  - {{name: {FREE}, source: {{embedded: {EMBEDDED_MODEL_NAME}}}, sampling: {{max_tokens: 12}}}}
  - {{name: {CONSTRAINED}, source: {{embedded: {EMBEDDED_MODEL_NAME}}}, decoding: constrained, sampling: {{max_tokens: 24}}}}
  - {{name: {TWO_SHOT}, source: {{embedded: {EMBEDDED_MODEL_NAME}}}, shots: 2, shot_seed: 3, sampling: {{max_tokens: 12}}}}
  - {{name: {BASELINE}, backend: baseline}}
  - {{name: {ENSEMBLE}, backend: ensemble, members: [{FREE}, {TWO_SHOT}, {BASELINE}], rule: majority}}
"""
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def evaluated(make_workspace, tmp_path_factory):
    datasets = small_datasets(tmp_path_factory.mktemp("small-data"))
    workspace = make_workspace(REGISTRY, datasets=datasets)
    runs = [f"prepare_data:{task}" for task in TASK_KEYS] + ["prepare_embedded_model", "observe_models", "observe_ensembles"]
    # The three entries of the embedded weights differ only in how they ask: one run, one engine.
    runs += [generate_range(FREE, TWO_SHOT), generate_range(BASELINE)]
    runs += [f"evaluate:{partition_key(model, task)}" for model in (*GENERATED, BASELINE) for task in TASK_KEYS]
    runs += [f"evaluate_ensembles:{partition_key(ENSEMBLE, task)}" for task in TASK_KEYS]
    runs += ["compare"] + [f"analyze_errors:{task}" for task in TASK_KEYS]
    reports = workspace.run(*runs, timeout=1200)
    workspace.reports = reports
    return workspace


def frames(workspace, asset: str, model: str) -> pd.DataFrame:
    """A model's frames of `parsed_labels` or `metrics` on every task (an ensemble's own assets' for the ensemble)."""
    asset = f"ensemble_{asset.removeprefix('parsed_')}" if model == ENSEMBLE else asset
    return pd.concat([pd.read_parquet(workspace.asset_file(asset, model, task)).assign(task=task) for task in TASK_KEYS])


def metrics(workspace) -> pd.DataFrame:
    return pd.concat([frames(workspace, "metrics", model) for model in MODELS], ignore_index=True)


def predictions_metadata(workspace, model: str) -> dict:
    """{partition key: metadata} of the model's predictions on every task."""
    keys = {partition_key(model, task) for task in TASK_KEYS}
    found = {key: metadata for r in workspace.reports for key, metadata in r["materializations"].get("predictions", {}).items() if key in keys}
    assert set(found) == keys
    return found


def test_constrained_answers_are_always_one_of_the_two_phrases(evaluated):
    """An ablation, labelled as one: the paper's free answers stay the default."""
    assert {m["decoding"] for m in predictions_metadata(evaluated, CONSTRAINED).values()} == {"constrained"}
    assert {m["decoding"] for m in predictions_metadata(evaluated, FREE).values()} == {"free"}
    assert "Constrained decoding is an ablation, not the paper's method" in (evaluated.home / "reports" / "report.html").read_text()
    predictions = frames(evaluated, "predictions", CONSTRAINED)
    for task, part in predictions.groupby("task"):
        assert set(part["text"]) <= set(answer_phrases(task)), part["text"].unique()
    assert frames(evaluated, "metrics", CONSTRAINED)["invalid"].sum() == 0
    free = frames(evaluated, "predictions", FREE)
    assert not set(free["text"]) <= {phrase for task in TASK_KEYS for phrase in answer_phrases(task)}  # free text differs


def test_two_shot_prompts_carry_two_examples_before_each_question(evaluated):
    free, two_shot = frames(evaluated, "predictions", FREE), frames(evaluated, "predictions", TWO_SHOT)
    assert free["id"].tolist() == two_shot["id"].tolist() and free["prompt_hash"].tolist() == two_shot["prompt_hash"].tolist()
    # Each item's prompt is the same; two example turns and their answers come before it.
    assert (two_shot["prompt_tokens"].to_numpy() > free["prompt_tokens"].to_numpy() * 2).all()
    metadata = predictions_metadata(evaluated, TWO_SHOT)
    assert {m["shots"] for m in metadata.values()} == {2} and {m["shot_seed"] for m in metadata.values()} == {3}


def test_the_ensemble_is_its_members_majority_vote(evaluated):
    members = [frames(evaluated, "parsed_labels", model).set_index(["task", "id"])["label"] for model in (FREE, TWO_SHOT, BASELINE)]
    ensemble = frames(evaluated, "parsed_labels", ENSEMBLE).set_index(["task", "id"])["label"]
    expected = vote(np.column_stack([m.loc[ensemble.index].to_numpy() for m in members]), rule="majority")
    assert ensemble.to_numpy().tolist() == expected.tolist()
    assert set(metrics(evaluated).query("model == @ENSEMBLE")["task"]) == set(TASK_KEYS)


def test_the_comparison_tests_every_pair_with_mcnemar_and_holm(evaluated):
    differences = pd.read_csv(evaluated.home / "reports" / "f1_differences.csv")
    assert len(differences) == len(TASK_KEYS) * len(MODELS) * (len(MODELS) - 1) // 2
    labels = {model: frames(evaluated, "parsed_labels", model).set_index(["task", "id"]) for model in MODELS}
    for _, row in differences.sample(8, random_state=0).iterrows():
        a, b = labels[row["model_a"]].loc[row["task"]], labels[row["model_b"]].loc[row["task"]]
        expected = mcnemar(a["gold"], a["label"], b.loc[a.index, "label"])
        assert (row["mcnemar_b"], row["mcnemar_c"]) == (expected["b"], expected["c"])
        assert row["mcnemar_p"] == pytest.approx(expected["p_value"])
    for _, pair in differences.groupby(["model_a", "model_b"]):
        assert pair["mcnemar_p_adjusted"].tolist() == pytest.approx(holm(pair["mcnemar_p"].tolist()))
    table3 = pd.read_csv(evaluated.home / "reports" / "table3.csv")
    assert {f"F1 {model}" for model in MODELS} <= set(table3.columns)
    sensitivity = pd.read_csv(evaluated.home / "reports" / "prompt_sensitivity.csv")
    assert set(sensitivity["Base model"]) == {f"embedded {EMBEDDED_MODEL_NAME}"} and len(sensitivity) == len(TASK_KEYS)


def test_error_analysis_has_a_row_per_test_item_and_no_text(evaluated):
    for task in TASK_KEYS:
        table = pd.read_parquet(evaluated.asset_file("error_analysis", task))
        split = pd.read_parquet(evaluated.asset_file("split", task))
        assert sorted(table["id"]) == sorted(split.query("part == 'test'")["id"])
        assert set(MODELS) <= set(table.columns) and "text" not in table.columns
        texts = set(split["text"])
        assert not any(cell in texts for column in table.columns for cell in table[column].astype(str))
        gold = table.set_index("id")["gold"]
        baseline = frames(evaluated, "parsed_labels", BASELINE).query("task == @task").set_index("id")["label"]
        right = table.set_index("id")["right"].str.split(", ")
        assert all((BASELINE in right[i]) == (baseline[i] == gold[i]) for i in gold.index)


def test_the_report_is_self_contained_and_its_numbers_match_the_metrics(evaluated):
    """Opened in a real Chromium, offline: every Table 3 cell and invalid count equals the metrics assets."""
    report = evaluated.home / "reports" / "report.html"
    page_source = report.read_text()
    assert not re.search(r"<(script|link)\b|https?://", page_source)  # nothing to fetch
    from playwright.sync_api import sync_playwright

    expected = metrics(evaluated).set_index(["task", "model"])
    requests = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri())
            header = page.locator("#table3 thead th").all_inner_texts()
            rows = [row.locator("td").all_inner_texts() for row in page.locator("#table3 tbody tr").all()]
            table3_overflow = page.locator("table#table3").evaluate("table => table.parentElement.scrollWidth - table.parentElement.clientWidth")
            image_width = page.locator("#forest-plot img").evaluate("image => image.naturalWidth")
            sections = page.locator("section h2").all_inner_texts()
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert image_width > 0  # the inline forest plot decoded
    # A row per task and model, F1 first, readable at 1280 px without scrolling sideways.
    assert header[:3] == ["Task", "Model", "F1"] and table3_overflow <= 0
    assert len(rows) == len(TASK_KEYS) * len(expected.index.unique("model"))
    titles = {TASKS[task].title: task for task in TASK_KEYS}
    task = None
    for row in rows:
        task = titles[row[0]] if row[0] else task
        r = expected.loc[(task, row[1])]
        for kind, cell in zip(header[2:], row[2:]):
            name = {"Precision": "precision", "Recall": "recall", "F1": "f1", "AUROC": "auroc", "AUPRC": "auprc"}.get(kind)
            if kind == "Invalid":
                assert int(cell) == r["invalid"]
            elif kind in ("AUROC", "AUPRC") and pd.isna(r[name]):  # a model that gives no scores
                assert cell == NO_SCORES
            else:
                assert cell == f"{r[name]:.2f} ({r[f'{name}_low']:.2f}-{r[f'{name}_high']:.2f})"
    for title in ("Paired differences and McNemar's test", "Confusion matrices", "Invalid answers by reason",
                  "Prompt sensitivity", "Error analysis", "Provenance: models", "Provenance: code versions"):
        assert title in sections

"""Scoring a real model, through Dagster: the embedded model on vLLM, cut short by a small
`max_tokens` so that some of its answers are invalid, against the baseline. Its metrics
match scikit-learn on its parsed labels under both invalid-answer policies (set as run
config, as the launchpad sets it), and the comparison's paired difference is that of two
models whose predictions really differ.

Slow: one vLLM engine start (30-50 s on 2 cores) for the 12 test prompts of one small task.
"""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import small_datasets
from sklearn.metrics import f1_score, precision_score, recall_score

pytestmark = pytest.mark.slow

MODEL, BASELINE, TASK = "smollm2-135m", "tfidf-logreg", "breast_cancer"
REGISTRY = f"""
models:
  - name: {MODEL}
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 8}}  # the positive answer fits; the negative, a token longer, is cut: invalid
  - name: {BASELINE}
    backend: baseline
"""
POLICIES = ("exclude", "negative")


@pytest.fixture(scope="module")
def scored(make_workspace, tmp_path_factory):
    """Both models generated and evaluated; the model evaluated and compared under `exclude`,
    then again under `negative` (the files hold the last; the run reports hold both)."""
    folder = tmp_path_factory.mktemp("scoring")
    workspace = make_workspace(REGISTRY, datasets=small_datasets(folder, positives=20, negatives=40))
    scored_under = []
    for policy in POLICIES:
        for job, op, keys in (("evaluate", "metrics", f":{MODEL}|{TASK}"), ("compare", "comparison", "")):
            config = folder / f"{job}-{policy}.json"
            config.write_text(json.dumps({"ops": {op: {"config": {"invalid": policy}}}}))
            scored_under.append(f"{job}{keys}@{config}")
    reports = workspace.run(
        f"prepare_data:{TASK}", "prepare_embedded_model", "observe_models",
        f"generate:{MODEL}|{TASK}", f"generate:{BASELINE}|{TASK}", f"evaluate:{BASELINE}|{TASK}",
        *scored_under,
    )
    evaluated = [report for report in reports if report["job"] == "evaluate"][1:]
    metrics = {policy: report["materializations"]["metrics"][f"{MODEL}|{TASK}"] for policy, report in zip(POLICIES, evaluated)}
    labels = {model: pd.read_parquet(workspace.asset_file("parsed_labels", model, TASK)) for model in (MODEL, BASELINE)}
    return SimpleNamespace(workspace=workspace, metrics=metrics, labels=labels)


def sklearn_scores(gold, pred) -> dict:
    return {
        "precision": precision_score(gold, pred, zero_division=0),
        "recall": recall_score(gold, pred, zero_division=0),
        "f1": f1_score(gold, pred, zero_division=0),
    }


def test_the_model_gives_valid_and_invalid_answers(scored):
    labels = scored.labels[MODEL]
    assert len(labels) == 12
    invalid = (labels["label"] == -1).sum()
    assert 0 < invalid < len(labels), labels["invalid_reason"].value_counts(dropna=False)


@pytest.mark.parametrize("policy", POLICIES)
def test_metrics_match_scikit_learn_on_the_parsed_labels(scored, policy):
    labels, metadata = scored.labels[MODEL], scored.metrics[policy]
    invalid = labels["label"] == -1
    if policy == "exclude":
        gold, pred = labels.loc[~invalid, "gold"], labels.loc[~invalid, "label"]
    else:
        gold, pred = labels["gold"], labels["label"].where(~invalid, 0)
    assert metadata["invalid_policy"] == policy
    assert (metadata["n"], metadata["invalid"]) == (len(gold), invalid.sum())
    expected = sklearn_scores(gold, pred)
    assert {name: metadata[name] for name in expected} == pytest.approx(expected, abs=5e-5)  # metadata rounds to 4 places


def test_the_comparison_is_that_of_two_models_that_really_differ(scored):
    a, b = (scored.labels[model].set_index("id").sort_index() for model in sorted((MODEL, BASELINE)))
    assert (a["label"] != b["label"]).any()
    (row,) = pd.read_csv(scored.workspace.home / "reports" / "f1_differences.csv").itertuples()
    assert (row.model_a, row.model_b) == tuple(sorted((MODEL, BASELINE)))
    f1 = [sklearn_scores(labels["gold"], labels["label"].clip(lower=0))["f1"] for labels in (a, b)]
    assert (row.f1_a, row.f1_b) == pytest.approx(f1)
    assert row.f1_diff == pytest.approx(f1[0] - f1[1])
    # McNemar's discordant items: only a right, only b right (an invalid answer counts as negative).
    right = [labels["label"].clip(lower=0) == labels["gold"] for labels in (a, b)]
    assert (row.mcnemar_b, row.mcnemar_c) == (int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum()))
    assert row.mcnemar_b + row.mcnemar_c > 0 and row.f1_diff_low < row.f1_diff_high

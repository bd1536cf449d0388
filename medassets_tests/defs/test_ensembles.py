"""An ensemble through Dagster, without an LLM: three baseline members (the third's answers
spoiled on some items, so the members disagree and some answers are invalid) are generated and
parsed; the ensemble's labels are the vote of their parsed labels, checked like a model's,
scored by the same metrics, and counted by the comparison and the error analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from test_pipeline import check_results, failure_text, materializations, members_generated, run, spoil, use_state

from medassets.core.ensemble import vote
from medassets.core.metrics import binary_report
from medassets.defs.partitions import partition_key

TASK = "breast_cancer"
MEMBERS = ("tfidf-a", "tfidf-b", "tfidf-spoiled")
ENSEMBLE, UNREADY = "vote", "vote-unready"
REGISTRY = f"""\
models:
  - {{name: {MEMBERS[0]}, backend: baseline}}
  - {{name: {MEMBERS[1]}, backend: baseline, seed: 1}}
  - {{name: {MEMBERS[2]}, backend: baseline, seed: 2}}
  - {{name: never-run, backend: baseline}}
  - {{name: {ENSEMBLE}, backend: ensemble, members: [{", ".join(MEMBERS)}], rule: majority}}
  - {{name: {UNREADY}, backend: ensemble, members: [{MEMBERS[0]}, never-run]}}
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    with members_generated(
        tmp_path_factory.mktemp("ensembles"), REGISTRY, TASK, MEMBERS, more_models=["never-run"], ensembles=[ENSEMBLE, UNREADY]
    ) as (home, instance):
        spoil(home, MEMBERS[2], TASK, 6, flipped=12)  # 6 invalid answers, 12 flipped
        for member in MEMBERS:
            assert run("evaluate", instance, partition_key=partition_key(member, TASK)).success
        ensemble = run("evaluate_ensembles", instance, partition_key=partition_key(ENSEMBLE, TASK))
        unready = run("evaluate_ensembles", instance, partition_key=partition_key(UNREADY, TASK))
        compare = run("compare", instance)
        errors = run("analyze_errors", instance, partition_key=TASK)
        yield home, ensemble, unready, compare, errors


def labels(home, asset: str, model: str) -> pd.DataFrame:
    return pd.read_parquet(home / "assets" / asset / model / f"{TASK}.parquet")


def test_the_ensembles_labels_are_the_vote_of_its_members_parsed_labels(evaluated):
    home, ensemble, *_ = evaluated
    assert ensemble.success, failure_text(ensemble)
    own = labels(home, "ensemble_labels", ENSEMBLE).set_index("id")
    members = [labels(home, "parsed_labels", member).set_index("id").loc[own.index, "label"].to_numpy() for member in MEMBERS]
    votes = np.column_stack(members)
    assert (votes[:, 2] != votes[:, 0]).any() and (votes[:, 2] == -1).any()  # the members really disagree
    assert own["label"].tolist() == vote(votes, rule="majority").tolist()
    assert own["gold"].tolist() == labels(home, "parsed_labels", MEMBERS[0]).set_index("id").loc[own.index, "gold"].tolist()
    assert own["invalid_reason"].isna().all() and own["votes"].str.contains(f"{MEMBERS[2]}=invalid").sum() == 6
    metadata = materializations(ensemble, "ensemble_labels")[partition_key(ENSEMBLE, TASK)]
    assert metadata["members"].value == list(MEMBERS) and metadata["rule"].value == "majority"
    assert metadata["model_revision"].value.startswith("ensemble-")


def test_the_ensemble_is_checked_and_scored_like_a_model(evaluated):
    home, ensemble, *_ = evaluated
    check = check_results(ensemble)["few_invalid_answers"]
    own = labels(home, "ensemble_labels", ENSEMBLE)
    assert check.metadata["invalid"].value == int((own["label"] == -1).sum())
    scored = labels(home, "ensemble_metrics", ENSEMBLE).iloc[0]
    expected = binary_report(own["gold"], own["label"])
    assert (scored["model"], scored["task"]) == (ENSEMBLE, TASK)
    for field in ("tp", "fp", "fn", "tn", "invalid", "f1", "f1_low", "f1_high"):
        assert scored[field] == pytest.approx(expected[field]), field


def test_an_ensemble_whose_member_has_no_labels_names_it(evaluated):
    _, _, unready, *_ = evaluated
    assert not unready.success
    assert f"ensemble '{UNREADY}': members ['never-run'] have no parsed labels on {TASK} yet" in failure_text(unready)


def test_the_comparison_and_the_error_analysis_count_the_ensemble(evaluated):
    home, _, _, compare, errors = evaluated
    assert compare.success, failure_text(compare)
    table3 = pd.read_csv(home / "reports" / "table3.csv")
    assert {f"F1 {model}" for model in (*MEMBERS, ENSEMBLE)} <= set(table3.columns)
    differences = pd.read_csv(home / "reports" / "f1_differences.csv")
    assert ENSEMBLE in set(differences["model_a"]) | set(differences["model_b"])
    report = (home / "reports" / "report.html").read_text()
    assert f"majority vote of {', '.join(MEMBERS)}" in report
    assert errors.success, failure_text(errors)
    table = pd.read_parquet(home / "assets" / "error_analysis" / f"{TASK}.parquet").set_index("id")
    own = labels(home, "ensemble_labels", ENSEMBLE).set_index("id")
    assert {0, 1} <= set(own["label"]) and set(table.index) == set(own.index)  # both answers occur, on every item
    answers = own["label"].astype(str).where(own["label"] != -1, "invalid: " + own["invalid_reason"].fillna(""))
    assert table.loc[own.index, ENSEMBLE].tolist() == answers.tolist()
    assert [ENSEMBLE in right.split(", ") for right in table.loc[own.index, "right"]] == (own["label"] == own["gold"]).tolist()


def test_the_ensembles_metrics_on_adjudicated_gold_equal_scikit_learn_on_the_corrected_labels(evaluated, tmp_path, monkeypatch):
    """Two items judged `wrong` and the analysis settings file at `gold: adjudicated`: the ensemble's metrics,
    launched without run config as automation launches them, score against the corrected labels."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    from medassets import paths
    from medassets.core.adjudication import checked, open_adjudications

    import shutil

    home = tmp_path / "state"  # a copy: the module's other tests read the original
    shutil.copytree(evaluated[0] / "assets", home / "assets")
    own = labels(home, "ensemble_labels", ENSEMBLE)
    analysis = tmp_path / "analysis.yaml"
    analysis.write_text("gold: adjudicated\n")
    registry = tmp_path / "models.yaml"
    registry.write_text(REGISTRY)
    use_state(monkeypatch, home, registry)
    monkeypatch.setenv("MEDASSETS_ANALYSIS", str(analysis))
    judged = own.iloc[:2]
    store = open_adjudications(None, paths.cache_path())
    try:
        for item, gold in zip(judged["id"], judged["gold"]):
            store.add(checked(TASK, item, "wrong", 1 - int(gold), "annotation error", "", "ana", int(gold)))
    finally:
        store.close()
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", [*MEMBERS, "never-run"])
        instance.add_dynamic_partitions("ensemble", [ENSEMBLE, UNREADY])
        assert run("adjudicate", instance, partition_key=TASK).success
        result = run("evaluate_ensembles", instance, partition_key=partition_key(ENSEMBLE, TASK))
        assert result.success, failure_text(result)
    corrected = own["gold"].copy()
    corrected.iloc[:2] = 1 - corrected.iloc[:2]
    predicted = own["label"].clip(lower=0)  # invalid answers score as negative
    metrics = labels(home, "ensemble_metrics", ENSEMBLE).iloc[0]
    assert metrics["gold"] == "adjudicated"
    assert metrics[["precision", "recall", "f1"]].tolist() == pytest.approx(
        [precision_score(corrected, predicted), recall_score(corrected, predicted), f1_score(corrected, predicted)]
    )

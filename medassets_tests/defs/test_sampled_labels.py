"""Several samples per item through Dagster, without an LLM: one of three baseline members'
stored predictions is rewritten as three samples per item (samples 1 and 2 flipped on some
items, sample 1 alone on others), as a `samples: 3` entry stores them. Its parsed labels keep
every sample; its metrics, the ensemble's vote, the comparison's paired tests and the error
analysis read each item's majority label, checked against the majority counted here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_pipeline import failure_text, materializations, members_generated, run

from sklearn.metrics import f1_score

from medassets.core.ensemble import vote
from medassets.core.metrics import binary_report
from medassets.defs.partitions import partition_key

TASK = "breast_cancer"
SAMPLED, OTHERS = "tfidf-sampled", ("tfidf-b", "tfidf-c")
MEMBERS = (SAMPLED, *OTHERS)
ENSEMBLE = "vote"
REGISTRY = f"""\
models:
  - {{name: {SAMPLED}, backend: baseline}}
  - {{name: {OTHERS[0]}, backend: baseline, seed: 1}}
  - {{name: {OTHERS[1]}, backend: baseline, seed: 2}}
  - {{name: {ENSEMBLE}, backend: ensemble, members: [{", ".join(MEMBERS)}]}}
"""
MAJORITY_FLIPPED, ONE_FLIPPED = 10, 5  # items whose samples 1 and 2 are flipped; then items whose sample 1 alone is


def as_three_samples(home, model: str) -> pd.Series:
    """The model's test answers stored as three samples per item; each item's majority label, by id."""
    path = home / "assets" / "predictions" / model / f"{TASK}.parquet"
    stored = pd.read_parquet(path)
    test, train = stored[stored["part"] == "test"], stored[stored["part"] == "train"]
    flipped = test.assign(label=1 - test["label"])
    samples = []
    for sample, flips in enumerate((0, MAJORITY_FLIPPED + ONE_FLIPPED, MAJORITY_FLIPPED)):
        answers = pd.concat([flipped.iloc[:flips], test.iloc[flips:]])
        samples.append(answers.assign(sample=sample, seed=pd.array([sample] * len(answers), dtype="Int64")))
    pd.concat([*samples, train], ignore_index=True).to_parquet(path, index=False)
    majority = pd.concat([flipped.iloc[:MAJORITY_FLIPPED], test.iloc[MAJORITY_FLIPPED:]])
    return majority.set_index("id")["label"].astype(int)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    with members_generated(tmp_path_factory.mktemp("sampled-labels"), REGISTRY, TASK, MEMBERS, ensembles=[ENSEMBLE]) as (home, instance):
        majority = as_three_samples(home, SAMPLED)
        evaluations = {member: run("evaluate", instance, partition_key=partition_key(member, TASK)) for member in MEMBERS}
        ensemble = run("evaluate_ensembles", instance, partition_key=partition_key(ENSEMBLE, TASK))
        compare = run("compare", instance)
        errors = run("analyze_errors", instance, partition_key=TASK)
        yield home, majority, evaluations, ensemble, compare, errors


def stored(home, asset: str, model: str) -> pd.DataFrame:
    return pd.read_parquet(home / "assets" / asset / model / f"{TASK}.parquet")


def test_parsed_labels_keep_every_sample(evaluated):
    home, majority, evaluations, *_ = evaluated
    assert evaluations[SAMPLED].success, failure_text(evaluations[SAMPLED])
    labels = stored(home, "parsed_labels", SAMPLED)
    assert len(labels) == 3 * len(majority) and set(labels.groupby("id")["sample"].apply(lambda samples: tuple(sorted(samples)))) == {(0, 1, 2)}
    assert materializations(evaluations[SAMPLED], "parsed_labels")[partition_key(SAMPLED, TASK)]["samples"].value == 3
    by_sample = labels.pivot(index="id", columns="sample", values="label")
    assert (by_sample[0] != by_sample[1]).sum() == MAJORITY_FLIPPED + ONE_FLIPPED  # the samples really disagree


def test_the_metrics_give_the_mean_over_samples_and_count_each_items_majority_label(evaluated):
    home, majority, *_ = evaluated
    labels = stored(home, "parsed_labels", SAMPLED)
    gold = labels.drop_duplicates("id").set_index("id").loc[majority.index, "gold"]
    on_majority = binary_report(gold, majority)
    metrics = stored(home, "metrics", SAMPLED).iloc[0]
    assert metrics["n"] == len(majority) and metrics["samples"] == labels["sample"].nunique()
    for field in ("tp", "fp", "fn", "tn", "invalid"):  # the counts: the majority labels'
        assert metrics[field] == pytest.approx(on_majority[field]), field
    per_sample = [
        f1_score(gold, labels[labels["sample"] == sample].set_index("id").loc[majority.index, "label"].clip(lower=0), zero_division=0)
        for sample in sorted(labels["sample"].unique())
    ]
    assert metrics["f1"] == pytest.approx(np.mean(per_sample)) and metrics["f1_low"] <= metrics["f1"] <= metrics["f1_high"]
    assert metrics["f1_run_sd"] == pytest.approx(np.std(per_sample, ddof=1))
    assert metrics["f1_majority"] == pytest.approx(on_majority["f1"])  # maj@K


def test_the_ensemble_votes_with_each_items_majority_label(evaluated):
    home, majority, _, ensemble, *_ = evaluated
    assert ensemble.success, failure_text(ensemble)
    own = stored(home, "ensemble_labels", ENSEMBLE).set_index("id")
    votes = np.column_stack(
        [majority.loc[own.index].to_numpy(), *(stored(home, "parsed_labels", m).set_index("id").loc[own.index, "label"].to_numpy() for m in OTHERS)]
    )
    assert own["label"].tolist() == vote(votes, rule="majority").tolist()


def test_the_comparison_and_the_error_analysis_read_one_label_per_item(evaluated):
    home, majority, _, _, compare, errors = evaluated
    assert compare.success, failure_text(compare)
    differences = pd.read_csv(home / "reports" / "f1_differences.csv")
    f1 = stored(home, "metrics", SAMPLED).iloc[0]["f1_majority"]  # McNemar's pairs read the majority labels
    pairs = 0
    for _, pair in differences[differences["task"] == TASK].iterrows():
        for side in ("a", "b"):
            if pair[f"model_{side}"] == SAMPLED:
                pairs += 1
                assert pair["n"] == len(majority) and pair[f"f1_{side}"] == pytest.approx(f1)
    assert pairs >= len(OTHERS)
    assert errors.success, failure_text(errors)
    table = pd.read_parquet(home / "assets" / "error_analysis" / f"{TASK}.parquet").set_index("id")
    assert len(table) == len(majority) and table.loc[majority.index, SAMPLED].tolist() == majority.astype(str).tolist()

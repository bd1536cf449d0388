"""Reasoning and cost accounting, checked against independent computations (the statistics
module, scikit-learn's F1, counting by hand)."""

import io
import math
import statistics
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from medassets.core.accounting import (
    ACCOUNTING_COLUMNS,
    GenerationCost,
    accounting_frame,
    accounting_row,
    accounting_table,
    generation_cost,
    item_tokens,
    reasoning_length_plot,
)
from medassets.core.answers import part_of
from medassets.core.parsing import INVALID_REASONS

REASONS = [None, None, None, "reasoning_cut_off", "reasoning_unclosed", "no_phrase", "both_phrases", "empty"]


def answers(n: int, seed: int, counted_share: float = 0.8):
    """Predictions and parsed labels of n items, drawn at random: some cut at max_tokens, some invalid,
    some reasoning counts missing; plus train rows that must be left out."""
    rng = np.random.default_rng(seed)
    ids = [f"i{k}" for k in range(n)]
    completion = rng.integers(5, 400, n)
    reasons = [REASONS[k] for k in rng.integers(0, len(REASONS), n)]
    reasoning = [int(rng.integers(0, c + 1)) if rng.random() < counted_share else None for c in completion]
    cut = [reason == "reasoning_cut_off" or rng.random() < 0.2 for reason in reasons]
    test = pd.DataFrame({
        "id": ids, "part": "test", "prompt_tokens": rng.integers(50, 120, n), "completion_tokens": completion,
        "reasoning_tokens": pd.array(reasoning, dtype="Int64"), "finish_reason": ["length" if c else "stop" for c in cut],
    })
    train = pd.concat([test.head(1)] * 3, ignore_index=True).assign(id=["t0", "t1", "t2"], part="train", completion_tokens=10_000)
    gold = rng.integers(0, 2, n)
    labels = pd.DataFrame({
        "id": ids[::-1],  # in another order than the predictions
        "gold": gold[::-1],
        "label": [int(rng.integers(0, 2)) if reason is None else -1 for reason in reasons][::-1],
        "invalid_reason": pd.array(reasons[::-1], dtype="string"),
    })
    return pd.concat([test, train], ignore_index=True), labels


def test_reasoning_tokens_are_the_engines_count_and_the_whole_answer_where_reasoning_never_closed():
    predictions, labels = answers(200, seed=1)
    items = item_tokens(predictions, labels).set_index("id")
    test = predictions[predictions["part"] == "test"].set_index("id")
    for item_id, item in items.iterrows():
        reason = labels.set_index("id").loc[item_id, "invalid_reason"]
        reason = None if pd.isna(reason) else reason
        completion, counted = test.loc[item_id, "completion_tokens"], test.loc[item_id, "reasoning_tokens"]
        if reason in ("reasoning_cut_off", "reasoning_unclosed"):
            assert item["reasoning_tokens"] == completion and item["answer_tokens"] == 0
        elif pd.isna(counted):
            assert pd.isna(item["reasoning_tokens"]) and pd.isna(item["answer_tokens"])
        else:
            assert (item["reasoning_tokens"], item["answer_tokens"]) == (counted, completion - counted)
        assert item["prompt_tokens"] == test.loc[item_id, "prompt_tokens"]
        assert item["cut"] == (test.loc[item_id, "finish_reason"] == "length")
    assert set(items.index) == set(labels["id"])  # train rows left out


@pytest.mark.parametrize("n, seed", [(1, 0), (7, 1), (60, 2), (500, 3)])
def test_the_accounting_row_matches_an_independent_computation(n, seed):
    predictions, labels = answers(n, seed)
    items = item_tokens(predictions, labels)
    cost = GenerationCost(wall_s=123.4, generated=n + 3, gpus=4)
    row = accounting_row("breast_cancer", "r1", items, cost)
    assert list(accounting_frame([row]).columns) == ACCOUNTING_COLUMNS

    by_id = predictions[predictions["part"] == "test"].set_index("id")
    gold = dict(zip(labels["id"], labels["gold"]))
    label = dict(zip(labels["id"], labels["label"]))
    reason = dict(zip(labels["id"], labels["invalid_reason"].astype(object).where(labels["invalid_reason"].notna(), None)))
    ids = list(labels["id"])
    reasoning = {}
    for i in ids:
        if reason[i] in ("reasoning_cut_off", "reasoning_unclosed"):
            reasoning[i] = int(by_id.loc[i, "completion_tokens"])
        elif not pd.isna(by_id.loc[i, "reasoning_tokens"]):
            reasoning[i] = int(by_id.loc[i, "reasoning_tokens"])
    answer = [int(by_id.loc[i, "completion_tokens"]) - reasoning[i] for i in ids if i in reasoning]
    expected_tokens = {"prompt": [int(by_id.loc[i, "prompt_tokens"]) for i in ids], "reasoning": list(reasoning.values()), "answer": answer}
    for kind, values in expected_tokens.items():
        if len(values) == 0:
            assert math.isnan(row[f"{kind}_tokens_median"])
            continue
        assert row[f"{kind}_tokens_median"] == pytest.approx(statistics.median(values))
        p90 = values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[8]
        assert row[f"{kind}_tokens_p90"] == pytest.approx(p90)
    assert row["reasoning_counted"] == len(reasoning)

    cut = [i for i in ids if by_id.loc[i, "finish_reason"] == "length"]
    assert (row["cut_at_max_tokens"], row["cut_share"]) == (len(cut), pytest.approx(len(cut) / n))

    def f1(chosen):
        if not chosen:
            return math.nan
        predicted = [1 if label[i] == 1 else 0 for i in chosen]  # an invalid answer counts as negative
        return f1_score([gold[i] for i in chosen], predicted, zero_division=0.0)

    finished = [i for i in ids if i not in cut]
    for column, chosen in (("f1_finished", finished), ("f1_all", ids)):
        expected = f1(chosen)
        assert (math.isnan(row[column]) and math.isnan(expected)) or row[column] == pytest.approx(expected), column
    counts = Counter(r for r in reason.values() if r is not None)
    assert {r: row[f"invalid_{r}"] for r in INVALID_REASONS} == {r: counts.get(r, 0) for r in INVALID_REASONS}
    assert row["generation_s_per_1000"] == pytest.approx(123.4 / (n + 3) * 1000)
    assert (row["gpus"], row["gpu_s_per_1000"]) == (4, pytest.approx(4 * 123.4 / (n + 3) * 1000))


def test_generation_cost_from_predictions_metadata():
    gpu = {"batch_cache_misses": 400, "batch_wall_s": 80.0, "device": "NVIDIA H100 80GB HBM3", "tensor_parallel_size": 4}
    cost = generation_cost(gpu)
    assert (cost.seconds_per_1000, cost.gpu_seconds_per_1000) == (200.0, 800.0)
    assert generation_cost(gpu | {"device": "cpu"}).gpu_seconds_per_1000 is None  # no GPU
    assert generation_cost(gpu | {"device": "server", "tensor_parallel_size": None}).gpus == 0  # not known
    assert generation_cost(gpu | {"batch_cache_misses": 0}) is None  # every answer cached: nothing was timed
    assert generation_cost({}) is None


def test_unknown_cost_and_counts_are_blank_in_the_table():
    predictions, labels = answers(30, seed=4, counted_share=0.0)
    labels["invalid_reason"] = labels["invalid_reason"].where(~labels["invalid_reason"].isin(["reasoning_cut_off", "reasoning_unclosed"]), None)
    row = accounting_row("stigma_labeling", "served", item_tokens(predictions, labels), None)
    assert math.isnan(row["reasoning_tokens_median"]) and math.isnan(row["generation_s_per_1000"]) and row["gpus"] == 0
    shown = accounting_table(accounting_frame([row])).iloc[0]
    assert shown["Reasoning tokens (median / p90)"] == "" and shown["Generation s per 1,000"] == "" and shown["GPU-s per 1,000"] == ""
    assert shown["Prompt tokens (median / p90)"] == f"{row['prompt_tokens_median']:,.0f} / {row['prompt_tokens_p90']:,.0f}"


def test_an_invalid_reason_the_accounting_does_not_know_is_an_error():
    predictions, labels = answers(5, seed=5)
    labels.loc[0, "invalid_reason"] = "truncated"
    with pytest.raises(ValueError, match=r"r1 on breast_cancer: invalid reasons the accounting does not know: \['truncated'\]"):
        accounting_row("breast_cancer", "r1", item_tokens(predictions, labels), None)


def test_labels_of_ids_the_predictions_lack_are_an_error():
    predictions, labels = answers(5, seed=6)
    with pytest.raises(ValueError, match=r"parsed labels of answers \(id, sample\) the predictions lack: \[\('zz', 0\)\]"):
        item_tokens(predictions, pd.concat([labels, labels.head(1).assign(id="zz")], ignore_index=True))


def test_the_reasoning_length_plot_is_a_png_naming_its_models():
    frames = []
    for model, seed in (("r1", 7), ("qwen3", 8)):
        predictions, labels = answers(40, seed)
        frames.append(item_tokens(predictions, labels).assign(model=model))
    png = reasoning_length_plot(pd.concat(frames, ignore_index=True))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.info["Description"] == "qwen3, r1"
    only_right = frames[0][frames[0]["correct"]].assign(model="r1")
    assert reasoning_length_plot(only_right).startswith(b"\x89PNG")  # a model with no wrong answer


def test_each_sample_of_an_item_is_an_answer_of_its_own():
    first, labels = answers(40, seed=8)
    second, _ = answers(40, seed=9)  # the same ids, other token counts
    predictions = pd.concat([first.assign(sample=0), second.assign(sample=1)], ignore_index=True)
    sampled = pd.concat([labels.assign(sample=1), labels.assign(sample=0)], ignore_index=True)
    items = item_tokens(predictions, sampled)
    test = part_of(predictions, "test").set_index(["id", "sample"])
    expected = test.loc[list(zip(sampled["id"], sampled["sample"])), "prompt_tokens"].to_numpy()
    assert len(items) == 80 and (items["prompt_tokens"].to_numpy() == expected).all()

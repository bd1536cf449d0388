"""Several samples per item on a real vLLM engine (the embedded model, one small task): each
item's sample is generated with its own seed and cached on its own, so raising `samples` generates
only the new samples and a re-run generates nothing (counted by vLLM's engine itself,
engine_probe); greedy samples are one answer, generated once, and the step warns that they agree. Parsed labels keep every sample, the
metrics count each item once (its majority label).

Slow: one run starts vLLM with 4 answers per test item, the next with 1, the last with none."""

from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import engine_events, engine_probe_env, small_datasets

from medassets.core.prompts import variant_prompts
from medassets.defs.partitions import partition_key

pytestmark = pytest.mark.slow

TASK = "breast_cancer"
GREEDY, SAMPLED = "greedy", "sampled"  # one engine: they differ only in sampling
SEED = 3


def registry(samples: int) -> str:
    return (
        "models:\n"
        f"  - {{name: {GREEDY}, source: {{embedded: smollm2-135m-instruct}}, samples: 2, sampling: {{max_tokens: 8}}}}\n"
        f"  - {{name: {SAMPLED}, source: {{embedded: smollm2-135m-instruct}}, samples: {samples}, "
        f"sampling: {{max_tokens: 8, temperature: 0.7, seed: {SEED}}}}}\n"
    )


BOTH = f"{partition_key(GREEDY, TASK)}..{partition_key(SAMPLED, TASK)}"


@pytest.fixture(scope="module")
def runs(make_workspace, tmp_path_factory):
    """Generation at 2 samples each, again with `sampled` raised to 3, again unchanged; then the labels and metrics."""
    log = tmp_path_factory.mktemp("engine") / "events.log"
    workspace = make_workspace(registry(2), datasets=small_datasets(tmp_path_factory.mktemp("small-data")), extra_env=engine_probe_env(log))
    workspace.run(f"prepare_data:{TASK}", "prepare_embedded_model", "observe_models")
    reports, events, frames = [], [], []
    for samples in (2, 3, 3):
        workspace.registry.write_text(registry(samples))
        seen = len(engine_events(log))
        (_, report) = workspace.run("observe_models", f"generate:{BOTH}")
        reports.append(report)
        events.append(Counter(engine_events(log)[seen:]))
        frames.append({model: pd.read_parquet(workspace.asset_file("predictions", model, TASK)) for model in (GREEDY, SAMPLED)})
    evaluations = workspace.run(*(f"evaluate:{partition_key(model, TASK)}" for model in (GREEDY, SAMPLED)))  # one partition a run
    evaluated = dict(zip((GREEDY, SAMPLED), evaluations))
    items = len(variant_prompts(pd.read_parquet(workspace.asset_file("prompts", TASK))))
    labels = {model: pd.read_parquet(workspace.asset_file("parsed_labels", model, TASK)) for model in (GREEDY, SAMPLED)}
    return SimpleNamespace(items=items, reports=reports, events=events, frames=frames, evaluated=evaluated, labels=labels)


def metadata(report: dict, model: str) -> dict:
    return report["materializations"]["predictions"][partition_key(model, TASK)]


def test_each_items_sample_is_generated_with_its_own_seed(runs):
    n = runs.items
    assert runs.events[0] == {"received": 3 * n, "finished": 3 * n}  # what vLLM itself was asked: 2 samples, and 1 greedy answer
    sampled = runs.frames[0][SAMPLED]
    assert len(sampled) == 2 * n and not sampled.duplicated(["id", "sample"]).any()
    assert sampled["seed"].notna().all() and sampled["seed"].nunique() == 2 * n  # one seed per item and sample: answers drawn apart
    by_sample = sampled.pivot(index="id", columns="sample", values="text")
    assert (by_sample[0] != by_sample[1]).any(), "at temperature 0.7, two seeds never gave two answers"
    assert metadata(runs.reports[0], SAMPLED)["samples"] == 2


def test_greedy_samples_agree_and_the_step_says_they_will(runs):
    greedy = runs.frames[0][GREEDY].pivot(index="id", columns="sample", values="text")
    assert (greedy[0] == greedy[1]).all() and runs.frames[0][GREEDY]["seed"].isna().all()
    messages = [log["message"] for log in runs.reports[0]["logs"]]
    assert any(message.startswith(f"{GREEDY}: `samples: 2` with greedy decoding") and "will agree" in message for message in messages)
    assert not any(message.startswith(f"{SAMPLED}: `samples:") for message in messages)


def test_raising_the_samples_generates_only_the_new_ones_and_a_rerun_nothing(runs):
    n = runs.items
    assert runs.events[1] == {"received": n, "finished": n}  # sample 2 of `sampled` alone
    raised = metadata(runs.reports[1], SAMPLED)
    assert (raised["batch_prompts"], raised["batch_cache_hits"], raised["batch_cache_misses"]) == (3 * n, 2 * n, n)
    assert metadata(runs.reports[1], GREEDY)["batch_cache_misses"] == 0
    before, after = runs.frames[0][SAMPLED], runs.frames[1][SAMPLED]
    assert len(after) == 3 * n and sorted(after["sample"].unique()) == [0, 1, 2]
    pd.testing.assert_frame_equal(after[after["sample"] < 2].reset_index(drop=True), before)  # kept as they were
    assert runs.events[2] == {}  # nothing reached the engine
    assert all(metadata(runs.reports[2], model)["batch_cache_misses"] == 0 for model in (GREEDY, SAMPLED))
    pd.testing.assert_frame_equal(runs.frames[2][SAMPLED], after)


def test_labels_keep_every_sample_and_metrics_count_each_item_once(runs):
    labels = runs.labels[SAMPLED]
    assert len(labels) == 3 * runs.items and set(labels.groupby("id")["sample"].apply(lambda samples: tuple(sorted(samples)))) == {(0, 1, 2)}
    assert runs.evaluated[SAMPLED]["materializations"]["parsed_labels"][partition_key(SAMPLED, TASK)]["samples"] == 3
    for model in (GREEDY, SAMPLED):
        assert runs.evaluated[model]["materializations"]["metrics"][partition_key(model, TASK)]["n"] == runs.items

"""The backend registry: one backend per registry entry type, what each says of its models,
and the baseline's predictions, which parse like a model's."""

from pathlib import Path

import pytest

from medassets.core.datasets import DatasetSource, load_dataset
from medassets.core.parsing import parse_answer
from medassets.core.prompts import render_prompts, variant_prompts
from medassets.core.registry import ENTRY_TYPES, parse_registry
from medassets.core.splitting import stratified_split
from medassets.engines import BACKENDS, backend_for
from medassets.engines.base import GeneratingBackend

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def spec(entry: str):
    return parse_registry(f"models:\n  - name: m\n    {entry}\n")["m"]


def test_every_registry_entry_type_but_the_ensemble_has_its_backend():
    # An ensemble generates nothing: its labels are an asset of their own (defs/evaluation.py).
    assert set(BACKENDS) == set(ENTRY_TYPES) - {"ensemble"}
    for name, backend in BACKENDS.items():
        assert backend.name == name


@pytest.mark.parametrize(
    "entry, gpus",
    [
        ("source: {path: /w}\n    tensor_parallel_size: 4", 4), ("source: {path: /w}", 1), ("backend: openai", 0),
        ("backend: baseline", 0),
    ],
)
def test_gpus_per_model(entry, gpus):
    model = spec(entry)
    assert backend_for(model).gpus(model) == gpus


@pytest.mark.parametrize(
    "entry, revision",
    [
        ("backend: openai", "served-m"),
        ("backend: openai\n    server: {served_model: llama}", "served-llama"),
        ("backend: openai\n    source: {hub: org/absent, revision: v2}", "hub-v2"),  # served elsewhere
        ("backend: baseline", "tfidf-logreg-v1"),
    ],
)
def test_revisions_known_without_local_weights(entry, revision, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model = spec(entry)
    assert backend_for(model).revision(model) == revision


def test_the_baseline_predicts_every_test_prompt_in_the_tasks_own_words(tmp_path):
    task = "breast_cancer"
    split = stratified_split(load_dataset(DatasetSource(path=SAMPLES / f"{task}.csv")).frame)
    prompts = render_prompts(task, split[split["part"] == "test"])
    model = spec("backend: baseline")
    backend = backend_for(model)
    assert not isinstance(backend, GeneratingBackend)  # no engine, no cache
    batch = backend.predict(model, {task: prompts}, {task: split}, models_dir=tmp_path, open_cache=None, report=print)
    frame = batch.frames[task]
    assert list(frame["id"]) == list(variant_prompts(prompts)["id"])
    labels = [parse_answer(task, text).label for text in frame["text"]]
    assert set(labels) == {0, 1}  # every answer parses, both classes predicted
    assert batch.metadata["model_revision"] == "tfidf-logreg-v1" and batch.metadata["backend"] == "baseline"


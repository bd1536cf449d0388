"""The model registry: the shipped file, defaults, and errors that name the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medassets.core.registry import ModelSpec, RegistryError, Sampling, load_registry, parse_registry

DATA = Path(__file__).resolve().parents[1] / "data"
WHERE = "models-under-test.yaml"

GOOD = """\
models:
  - name: small
    backend: vllm
    source: {embedded: smollm2-135m-instruct}
  - name: served
    backend: openai
    server: {base_url: "http://localhost:9000/v1"}
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line holding the given occurrence of needle."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def registry_error(text: str) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry(text, WHERE)
    return str(info.value)


def test_shipped_registry_loads():
    models = load_registry(DATA / "models.yaml")
    assert set(models) == {"smollm2-135m", "tfidf-logreg"}
    small = models["smollm2-135m"]
    assert small.backend == "vllm"
    assert small.source == {"embedded": "smollm2-135m-instruct"}
    assert small.source_kind == "embedded"
    assert small.sampling.max_tokens == 48
    assert (small.dtype, small.gpu_memory_utilization) == ("float32", 0.3)
    assert (small.sampling.temperature, small.sampling.seed) == (0.0, 0)
    assert models["tfidf-logreg"].backend == "baseline"


def test_defaults_fit_the_embedded_model_on_a_cpu():
    spec = ModelSpec(name="x")
    assert spec.dtype == "float32"
    assert spec.gpu_memory_utilization == 0.3
    assert spec.tensor_parallel_size == 1
    assert spec.reasoning is False
    assert spec.sampling == Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0, stop=())


def test_a_valid_registry_parses_nested_settings():
    models = parse_registry(GOOD, WHERE)
    assert list(models) == ["small", "served"]
    assert models["served"].server.base_url == "http://localhost:9000/v1"
    assert models["served"].sampling.temperature == 0.0
    assert parse_registry("", WHERE) == {}


def test_load_registry_names_a_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(RegistryError, match=re.escape(str(path))):
        load_registry(path)


def test_load_registry_names_the_file_in_errors(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(GOOD + "    colour: red\n")
    with pytest.raises(RegistryError, match=re.escape(f"{path}:8:") + ".*'colour'"):
        load_registry(path)


def test_unknown_top_level_field_names_its_line():
    text = GOOD + "    max_tokens: 12\n"  # belongs under sampling
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'max_tokens')}:")
    assert "unknown field 'max_tokens'" in message


def test_unknown_nested_sampling_field_names_its_line():
    text = GOOD.replace(
        "    source: {embedded: smollm2-135m-instruct}\n",
        "    source: {embedded: smollm2-135m-instruct}\n    sampling:\n      max_tokens: 8\n      temprature: 0.7\n",
    )
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'temprature')}:")
    assert "unknown field 'temprature'" in message


def test_duplicate_name_names_the_second_entry():
    text = GOOD + "  - name: small\n    backend: baseline\n"
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'name: small', occurrence=2)}:")
    assert "duplicate model name 'small'" in message


@pytest.mark.parametrize("entry", ["  - backend: baseline\n", "  - name: org/model\n    backend: baseline\n",
                                   "  - name: ''\n    backend: baseline\n", "  - name: 7\n    backend: baseline\n"],
                         ids=["missing", "slash", "empty", "number"])
def test_missing_or_invalid_name(entry):
    text = GOOD + entry
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, '  - ', occurrence=3)}:")
    assert "`name` is required" in message


@pytest.mark.parametrize(
    "entry, complaint",
    [
        ("  - name: m\n    backend: tgi\n", "backend must be one of"),
        ("  - name: m\n    backend: vllm\n", "a vllm model needs a source"),
        ("  - name: m\n    source: {hub: org/name}\n", "a hub source needs a revision"),
        ("  - name: m\n    source: {embedded: x}\n    gpu_memory_utilization: 1.5\n", "gpu_memory_utilization"),
        ("  - name: m\n    source: {embedded: x, rev: abc}\n", "source takes one of"),
    ],
    ids=["bad-backend", "vllm-without-source", "hub-without-revision", "gpu-share-above-1", "unknown-source-key"],
)
def test_invalid_entry_names_the_entry_line(entry, complaint):
    text = GOOD + entry
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, '- name: m')}: model 'm':")
    assert complaint in message


def test_a_hub_source_with_a_revision_is_valid():
    spec = parse_registry("models:\n  - name: m\n    source: {hub: org/name, revision: abc123}\n", WHERE)["m"]
    assert spec.source_kind == "hub" and spec.source["revision"] == "abc123"


@pytest.mark.parametrize(
    "entry, needle, complaint",
    [
        ("  - name: m\n    source: org/name\n", "source: org/name", "`source` must be a mapping"),
        ("  - name: m\n    backend: baseline\n    sampling: 5\n", "sampling: 5", "`sampling` must be a mapping"),
        ("  - name: m\n    backend: baseline\n    max_model_len: big\n", "max_model_len", "must be a number"),
        ("  - name: m\n    backend: baseline\n    sampling:\n      temperature: hot\n", "temperature", "must be a number"),
    ],
    ids=["source-as-text", "sampling-as-number", "text-length", "text-temperature"],
)
def test_wrongly_typed_values_name_their_line(entry, needle, complaint):
    text = GOOD + entry
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, needle)}:")
    assert complaint in message


def test_invalid_yaml():
    message = registry_error("models:\n  - name: a\n    source: {embedded: x\n")
    assert message.startswith(f"{WHERE}: not valid YAML")
    assert re.search(r"line \d+", message)


@pytest.mark.parametrize("text", ["model:\n  - name: a\n", "- name: a\n", "models: {name: a}\n"],
                         ids=["misspelled-key", "bare-list", "models-not-a-list"])
def test_wrong_document_shape(text):
    assert registry_error(text).startswith(f"{WHERE}:1:")

"""The model registry: the shipped file, defaults, and errors that name the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medassets.core.registry import (
    EmbeddedSource,
    EnsembleModel,
    HubSource,
    RegistryError,
    Sampling,
    load_registry,
    parse_registry,
    registered_model,
)
from medassets.core.prompts import text_hash
from medassets.engines.baseline import BaselineModel
from medassets.engines.openai_server import OpenAIModel
from medassets.engines.vllm_offline import BACKEND, VLLMModel

DATA = Path(__file__).resolve().parents[2] / "data"
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


def test_scoring_cannot_be_constrained():
    entry = "  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    scoring: likelihood\n    decoding: constrained\n"
    with pytest.raises(RegistryError, match="nothing to constrain"):
        parse_registry("models:\n" + entry, "models.yaml")


def test_a_scored_entry_takes_one_sample():
    entry = "  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    scoring: likelihood\n    samples: 3\n"
    assert registry_error("models:\n" + entry) == (
        f"{WHERE}:5: model 'm': `samples`: Value error, `scoring: likelihood` gives one score per item, so it takes one sample (given: 3)"
    )
    assert "`samples`: Input should be greater than or equal to 1" in registry_error(
        "models:\n  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    samples: 0\n"
    )


def test_several_greedy_samples_are_warned_of():
    models = parse_registry(
        "models:\n"
        "  - {name: greedy, source: {embedded: smollm2-135m-instruct}, samples: 3}\n"
        "  - {name: sampled, source: {embedded: smollm2-135m-instruct}, samples: 3, sampling: {temperature: 0.7, seed: 5}}\n"
        "  - {name: once, source: {embedded: smollm2-135m-instruct}}\n"
    )
    assert models["greedy"].warnings() == [
        "`samples: 3` with greedy decoding (`sampling.temperature: 0`): the 3 samples will agree, each the same answer; "
        "set a temperature above 0 for samples that differ"
    ]
    assert models["sampled"].warnings() == models["once"].warnings() == []


def test_shipped_registry_loads():
    models = load_registry(DATA / "models.yaml")
    assert set(models) == {
        "smollm2-135m", "smollm2-135m-constrained", "smollm2-135m-2shot", "smollm2-135m-sampled", "smollm2-135m-scored", "tfidf-logreg",
        "majority-vote",
    }
    small = models["smollm2-135m"]
    assert isinstance(small, VLLMModel) and small.backend == "vllm"
    assert small.source == EmbeddedSource(embedded="smollm2-135m-instruct")
    assert small.sampling.max_tokens == 48
    assert (small.dtype, small.gpu_memory_utilization) == ("float32", 0.3)
    assert (small.sampling.temperature, small.sampling.seed) == (0.0, 0)
    assert isinstance(models["tfidf-logreg"], BaselineModel)
    assert (small.variant, small.shots, small.decoding) == ("paper", 0, "free")  # the paper's zero-shot prompt
    assert models["smollm2-135m-constrained"].decoding == "constrained"
    assert (models["smollm2-135m-2shot"].shots, models["smollm2-135m-2shot"].shot_seed) == (2, 0)
    assert (models["smollm2-135m-scored"].scoring, models["smollm2-135m-scored"].threshold_rows) == ("likelihood", 60)
    sampled = models["smollm2-135m-sampled"]
    assert (sampled.samples, sampled.sampling.temperature, sampled.warnings()) == (3, 0.7, [])
    assert BACKEND.engine_settings(sampled) == BACKEND.engine_settings(small)  # one engine serves both
    assert small.scoring == "generate"
    vote = models["majority-vote"]
    assert isinstance(vote, EnsembleModel)
    assert (vote.members, vote.rule, vote.tie, vote.invalid_member) == (
        ("smollm2-135m", "smollm2-135m-2shot", "tfidf-logreg"), "majority", "negative", "abstain"
    )


ENSEMBLE_MEMBERS = GOOD + """  - name: base
    backend: baseline
  - name: vote
    backend: ensemble
    members: MEMBERS
"""


@pytest.mark.parametrize(
    "members, complaint",
    [
        ("[small, missing]", "member 'missing' is not registered; registered: ['base', 'served', 'small', 'vote']"),
        ("[small, vote]", "member 'vote' is an ensemble; members must be models that answer"),
        ("[small, small]", "`members` names a model twice"),
        ("[small]", "`members`: Tuple should have at least 2 items"),
    ],
    ids=["unregistered", "ensemble", "twice", "one"],
)
def test_ensemble_members_must_be_registered_models(members, complaint):
    text = ENSEMBLE_MEMBERS.replace("MEMBERS", members)
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'name: vote')}: model 'vote':") or message.startswith(
        f"{WHERE}:{line_of(text, 'members:')}: model 'vote':"
    ), message
    assert complaint in message, message


def test_an_unknown_prompt_variant_names_the_known_ones():
    text = GOOD + "  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    variant: chatty\n"
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'variant: chatty')}: model 'm': `variant`:"), message
    assert "unknown prompt variant 'chatty'; known: ['concise', 'paper']" in message


def test_defaults_fit_the_embedded_model_on_a_cpu():
    spec = parse_registry("models:\n  - name: x\n    source: {embedded: smollm2-135m-instruct}\n")["x"]
    assert isinstance(spec, VLLMModel)  # vllm is the default backend
    assert spec.dtype == "float32"
    assert spec.gpu_memory_utilization == 0.3
    assert spec.tensor_parallel_size == 1
    assert spec.reasoning is False
    assert spec.sampling == Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0, stop=())


def test_a_valid_registry_parses_nested_settings():
    models = parse_registry(GOOD, WHERE)
    assert list(models) == ["small", "served"]
    assert isinstance(models["served"], OpenAIModel)
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
    "entry, needle, complaint",
    [
        ("  - name: m\n    backend: tgi\n", "- name: m", "backend must be one of baseline, ensemble, openai, vllm (given: 'tgi')"),
        ("  - name: m\n    backend: vllm\n", "- name: m", "`source` is required"),
        ("  - name: m\n    source: {hub: org/name}\n", "source:", "`source.revision` is required"),
        ("  - name: m\n    source: {embedded: x}\n    gpu_memory_utilization: 1.5\n", "gpu_memory",
         "`gpu_memory_utilization`: Input should be less than or equal to 1"),
        ("  - name: m\n    source: {embedded: x, rev: abc}\n", "source:", "unknown field 'rev'"),
        ("  - name: m\n    source: org/name\n", "source:", "source takes one of embedded, path or hub"),
        ("  - name: m\n    backend: baseline\n    sampling: {seed: 1}\n", "sampling",
         "unknown field 'sampling'; known: ['backend', 'kubernetes', 'name', 'seed', 'slurm']"),
        ("  - name: m\n    backend: openai\n    sampling: 5\n", "sampling: 5", "`sampling`: Input should be"),
        ("  - name: m\n    source: {path: /w}\n    max_model_len: big\n", "max_model_len", "`max_model_len`: Input should be a valid integer"),
        ("  - name: m\n    source: {path: /w}\n    max_model_len: '12'\n", "max_model_len", "`max_model_len`: Input should be a valid integer"),
        ("  - name: m\n    source: {path: /w}\n    sampling:\n      temperature: hot\n", "temperature",
         "`sampling.temperature`: Input should be a valid number"),
        ("  - name: m\n    source: {path: /w}\n    sampling:\n      max_tokens: 0\n", "max_tokens", "`sampling.max_tokens`: Input should be greater than 0"),
        ("  - name: m\n    source: {path: /w}\n    fingerprint: full\n", "fingerprint", "`fingerprint`: Input should be 'quick' or 'content'"),
        ("  - name: m\n    backend: openai\n    server: {max_concurrency: 0}\n", "server", "`server.max_concurrency`: Input should be greater than 0"),
    ],
    ids=["bad-backend", "vllm-without-source", "hub-without-revision", "gpu-share-above-1", "unknown-source-key",
         "source-as-text", "sampling-on-baseline", "sampling-as-number", "text-length", "quoted-number",
         "text-temperature", "no-tokens", "bad-fingerprint", "no-concurrency"],
)
def test_invalid_entry_names_the_line_and_the_field(entry, needle, complaint):
    text = GOOD + entry
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, needle, occurrence=text.count(needle))}: model 'm':"), message
    assert complaint in message, message


def test_a_hub_source_with_a_revision_is_valid():
    spec = parse_registry("models:\n  - name: m\n    source: {hub: org/name, revision: abc123}\n", WHERE)["m"]
    assert spec.source == HubSource(hub="org/name", revision="abc123")


def test_registered_model_finds_an_entry_or_names_the_registry(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(GOOD)
    assert registered_model("served", path).server.base_url == "http://localhost:9000/v1"
    with pytest.raises(RegistryError, match=re.escape(f"{path}: no model named 'absent'; registered: ['served', 'small']")):
        registered_model("absent", path)


def test_every_field_is_described():
    """Users read the options where they are defined (and in the Dagster UI)."""
    from pydantic import BaseModel

    def described(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description or name == "backend", f"{model.__name__}.{name}"
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                described(field.annotation)

    for model in (VLLMModel, OpenAIModel, BaselineModel, EnsembleModel, EmbeddedSource, HubSource):
        described(model)


def test_invalid_yaml():
    message = registry_error("models:\n  - name: a\n    source: {embedded: x\n")
    assert message.startswith(f"{WHERE}: not valid YAML")
    assert re.search(r"line \d+", message)


@pytest.mark.parametrize("text", ["model:\n  - name: a\n", "- name: a\n", "models: {name: a}\n"],
                         ids=["misspelled-key", "bare-list", "models-not-a-list"])
def test_wrong_document_shape(text):
    assert registry_error(text).startswith(f"{WHERE}:1:")


@pytest.mark.parametrize("placement", ["slurm: {memory: 64G}", "kubernetes: {node_selector: {gpu: h100}}"])
def test_entries_sharing_an_engine_must_share_its_placement(placement):
    """Two entries of one engine (they differ only in how they ask) run in one job: a placement on one
    alone would be silently dropped, so it is an error naming both; entries of two engines may differ."""
    field = placement.split(":")[0]
    with pytest.raises(RegistryError, match=rf"<r>:3: model 'two-shot': shares an engine with 'zero-shot' \(line 2\) but asks for another `{field}`"):
        parse_registry(f"models:\n  - {{name: zero-shot, source: {{path: /w}}}}\n  - {{name: two-shot, source: {{path: /w}}, shots: 2, {placement}}}\n", "<r>")
    parse_registry(f"models:\n  - {{name: small, source: {{path: /w}}}}\n  - {{name: half, source: {{path: /w}}, dtype: bfloat16, {placement}}}\n", "<r>")


# --- model-card presets -------------------------------------------------------------------

PRESET_ENTRY = "models:\n  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    preset: %s\n"


@pytest.mark.parametrize("preset", ["deepseek-r1", "qwen3", "smollm3"])
def test_a_preset_sets_its_card_settings(preset):
    from medassets.core.registry import PRESETS

    entry = parse_registry(PRESET_ENTRY % preset, WHERE)["m"]
    card = PRESETS[preset]
    assert entry.preset == preset and entry.reasoning is True
    assert entry.sampling == Sampling(**card["sampling"])  # the other sampling fields keep their defaults
    assert entry.reply_prefix == card.get("reply_prefix")
    assert (entry.sampling.temperature, entry.sampling.top_p) == (0.6, 0.95)  # each card's thinking-mode advice


def test_qwen3_samples_among_its_cards_top_k_and_the_other_presets_leave_top_k_and_min_p_off():
    sampling = {preset: parse_registry(PRESET_ENTRY % preset, WHERE)["m"].sampling for preset in ("deepseek-r1", "qwen3", "smollm3")}
    assert {preset: (s.top_k, s.min_p) for preset, s in sampling.items()} == {"deepseek-r1": (0, 0.0), "qwen3": (20, 0.0), "smollm3": (0, 0.0)}


def test_top_k_and_min_p_change_the_answer_key_only_when_set():
    """Added after answers were cached: while off they are left out of the dump, so an entry
    that does not use them keeps its answer key (the dump below is the one before they existed)."""
    assert Sampling().model_dump(mode="json") == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 0, "stop": []}
    assert Sampling(top_k=20, min_p=0.05).model_dump(mode="json")["top_k"] == 20
    entries = parse_registry(
        "models:\n"
        "  - {name: plain, source: {embedded: smollm2-135m-instruct}, sampling: {temperature: 0.6}}\n"
        "  - {name: unset, source: {embedded: smollm2-135m-instruct}, sampling: {temperature: 0.6, top_k: 0, min_p: 0.0}}\n"
        "  - {name: top_k, source: {embedded: smollm2-135m-instruct}, sampling: {temperature: 0.6, top_k: 20}}\n"
        "  - {name: min_p, source: {embedded: smollm2-135m-instruct}, sampling: {temperature: 0.6, min_p: 0.05}}\n",
        WHERE,
    )
    settings = {name: entry.answer_settings() for name, entry in entries.items()}
    assert settings["plain"] == settings["unset"]
    assert len({str(sorted(settings[name]["sampling"].items())) for name in ("plain", "top_k", "min_p")}) == 3
    too_high = registry_error("models:\n  - {name: m, source: {embedded: smollm2-135m-instruct}, sampling: {min_p: 2}}\n")
    assert "`sampling.min_p`: Input should be less than or equal to 1" in too_high


def test_only_deepseek_r1_opens_the_reply_with_its_think_tag():
    replies = {preset: parse_registry(PRESET_ENTRY % preset, WHERE)["m"].reply_prefix for preset in ("deepseek-r1", "qwen3", "smollm3")}
    assert replies == {"deepseek-r1": "<think>\n", "qwen3": None, "smollm3": None}


def test_fields_written_in_the_entry_override_the_preset_field_by_field():
    text = PRESET_ENTRY % "deepseek-r1" + "    reasoning: false\n    reply_prefix: null\n    sampling: {max_tokens: 16, seed: 3}\n"
    entry = parse_registry(text, WHERE)["m"]
    assert (entry.reasoning, entry.reply_prefix) == (False, None)
    assert entry.sampling == Sampling(temperature=0.6, top_p=0.95, max_tokens=16, seed=3)
    built = VLLMModel(name="m", source={"embedded": "smollm2-135m-instruct"}, preset="qwen3", sampling=Sampling(max_tokens=16))
    assert built.sampling == Sampling(temperature=0.6, top_p=0.95, top_k=20, max_tokens=16)  # in code as in a file


def test_an_entry_with_a_preset_has_the_keys_of_its_settings_written_out(tmp_path):
    """The keys come from the settings in effect: a preset's name alone changes none of them."""
    from medassets.engines import answer_key, output_version

    with_preset = parse_registry(PRESET_ENTRY % "deepseek-r1", WHERE)["m"]
    written_out = parse_registry(
        "models:\n  - name: m\n    source: {embedded: smollm2-135m-instruct}\n    reasoning: true\n    reply_prefix: \"<think>\\n\"\n"
        "    sampling: {temperature: 0.6, top_p: 0.95, max_tokens: 32768}\n", WHERE,
    )["m"]
    plain = parse_registry(PRESET_ENTRY.replace("    preset: %s\n", ""), WHERE)["m"]
    assert with_preset.preset != written_out.preset
    assert (answer_key(with_preset), output_version(with_preset)) == (answer_key(written_out), output_version(written_out))
    assert answer_key(with_preset) != answer_key(plain) and output_version(with_preset) != output_version(plain)


def test_changing_a_preset_value_changes_the_keys_of_its_entries(monkeypatch):
    from medassets.core import registry
    from medassets.engines import answer_key, output_version

    before = parse_registry(PRESET_ENTRY % "qwen3", WHERE)["m"]
    changed = registry.PRESETS["qwen3"] | {"sampling": registry.PRESETS["qwen3"]["sampling"] | {"max_tokens": 1024}}
    monkeypatch.setitem(registry.PRESETS, "qwen3", changed)
    after = parse_registry(PRESET_ENTRY % "qwen3", WHERE)["m"]
    assert after.sampling.max_tokens == 1024
    assert answer_key(after) != answer_key(before) and output_version(after) != output_version(before)


def test_an_unknown_preset_is_named_with_the_file_line_and_field():
    text = "models:\n  - name: small\n    source: {embedded: smollm2-135m-instruct}\n\n    preset: deepseek\n"
    message = registry_error(text)
    assert message.startswith(f"{WHERE}:{line_of(text, 'preset:')}: model 'small': `preset`:")
    assert "'deepseek-r1', 'qwen3' or 'smollm3'" in message and "'deepseek'" in message


def test_a_preset_with_a_sampling_that_is_not_a_mapping_is_named():
    text = PRESET_ENTRY % "qwen3" + "    sampling: fast\n"
    assert registry_error(text).startswith(f"{WHERE}:{line_of(text, 'sampling:')}: model 'm': `sampling`")


@pytest.mark.parametrize("asked, warned", [
    ("", []),
    ("    system_prompt: Be brief.\n", ["system_prompt"]),
    ("    shots: 2\n", ["shots"]),
    ("    system_prompt: Be brief.\n    shots: 2\n", ["system_prompt", "shots"]),
])
def test_a_deepseek_r1_entry_is_warned_of_a_system_prompt_and_examples(asked, warned):
    entry = parse_registry(PRESET_ENTRY % "deepseek-r1" + asked, WHERE)["m"]
    warnings = entry.warnings()
    assert [next(field for field in ("system_prompt", "shots") if f"`{field}`" in warning) for warning in warnings] == warned
    assert all(warning.startswith("(preset deepseek-r1) ") for warning in warnings)
    # the same asking under another card's preset, or none, is not warned of
    assert parse_registry(PRESET_ENTRY % "qwen3" + asked, WHERE)["m"].warnings() == []
    assert parse_registry(PRESET_ENTRY.replace("    preset: %s\n", "") + asked, WHERE)["m"].warnings() == []


def test_a_served_model_takes_a_preset_and_entries_that_generate_nothing_refuse_one():
    served = parse_registry("models:\n  - name: m\n    backend: openai\n    preset: smollm3\n    sampling: {seed: 4}\n", WHERE)["m"]
    assert isinstance(served, OpenAIModel) and served.reasoning and served.sampling == Sampling(temperature=0.6, top_p=0.95, max_tokens=32768, seed=4)
    assert "unknown field 'preset'" in registry_error("models:\n  - name: m\n    backend: baseline\n    preset: qwen3\n")


def test_a_chat_template_file_is_read_once_with_the_registry(tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text("{{ messages }}")
    text = f"models:\n  - name: m\n    source: {{path: /w}}\n    chat_template: {template}\n"
    entry = parse_registry(text, WHERE)["m"]
    template.write_text("edited after the registry was read")
    assert entry.chat_template_text == "{{ messages }}"  # what its answers use, and what its key holds
    assert entry.answer_settings()["chat_template"] == text_hash("{{ messages }}")
    missing = text.replace(str(template), str(tmp_path / "absent.jinja"))
    assert "`chat_template`: cannot read" in registry_error(missing) and "absent.jinja" in registry_error(missing)

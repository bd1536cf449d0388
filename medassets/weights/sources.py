"""A registry source (`embedded`, `path` or `hub`) as a local folder and a revision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medassets.core.prompts import text_hash
from medassets.core.registry import EmbeddedSource, HubSource, PathSource, Source
from medassets.paths import hub_offline
from medassets.weights.embedded import EMBEDDED_MODEL_NAME, embedded_revision, prepare_embedded_model
from medassets.weights.folders import ModelSourceError, folder_content_hash, folder_fingerprint, model_chat_template

@dataclass(frozen=True)
class ChatTemplate:
    text: str | None  # an override's text, or None for the model's own template
    hash: str  # of the template in effect: the override, the folder's, or "model-default"


def _check_embedded(source: EmbeddedSource) -> None:
    if source.embedded != EMBEDDED_MODEL_NAME:
        raise ModelSourceError(f"unknown embedded model {source.embedded!r}; there is {EMBEDDED_MODEL_NAME!r}")


def hub_folder(source: HubSource) -> Path:
    """The snapshot of a hub model in the local Hugging Face cache; never downloads."""
    hub_offline()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source.hub, revision=source.revision, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise ModelSourceError(
            f"{source.hub}@{source.revision} is not in the local Hugging Face cache; medassets never "
            f"downloads weights: fill the cache yourself (huggingface-cli download) or use a path source"
        ) from exc


def source_revision(source: Source, fingerprint: str) -> str:
    """What identifies the weights, without loading or preparing them. Local folders get a
    quick fingerprint unless `fingerprint` is "content"; a hub revision (a branch, tag or
    commit) resolves to the commit in the local cache."""
    if isinstance(source, EmbeddedSource):
        _check_embedded(source)
        return embedded_revision()
    if isinstance(source, PathSource):
        folder = Path(source.path)
        return folder_content_hash(folder) if fingerprint == "content" else folder_fingerprint(folder)
    return "hub-" + hub_folder(source).name


def source_folder(source: Source, models_dir: Path) -> Path:
    """The local folder of the weights, preparing the embedded model if needed."""
    if isinstance(source, EmbeddedSource):
        _check_embedded(source)
        return prepare_embedded_model(models_dir / EMBEDDED_MODEL_NAME).folder
    if isinstance(source, PathSource):
        return Path(source.path)
    return hub_folder(source)


def chat_template(override: str | None, folder: Path | None) -> ChatTemplate:
    """The template in effect: the text of the registry entry's template file if it names one
    (`GeneratingEntry.chat_template_text`), else the folder's own."""
    effective = override if override is not None else (model_chat_template(folder) if folder else None)
    return ChatTemplate(override, text_hash(effective) if effective is not None else "model-default")

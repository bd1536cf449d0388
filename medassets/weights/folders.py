"""Revisions of local files and folders, and a folder's chat template."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

# Small files whose content defines the model's behaviour; the quick fingerprint takes the
# weights by size and modification time.
_CONTENT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


class ModelSourceError(RuntimeError):
    """A model that cannot be found locally."""


def _update_with_content(digest, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)


def _update_with_stat(digest, path: Path) -> None:
    stat = path.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read once per process for a given size and modification time (a
    step asks for the embedded model's revision both to prepare it and to key its answers)."""
    stat = path.stat()
    return _content_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    _update_with_content(digest, Path(path))
    return digest.hexdigest()


def _folder_digest(folder: Path, update: Callable[[object, Path], None]) -> str:
    if not folder.is_dir():
        raise ModelSourceError(f"{folder}: model folder not found")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        update(digest, path)
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: Path) -> str:
    """A cheap revision of a local model folder: content of its config and tokenizer files,
    names, sizes and modification times of everything else."""

    def update(digest, path: Path) -> None:
        (_update_with_content if path.name in _CONTENT_FILES else _update_with_stat)(digest, path)

    return "folder-" + _folder_digest(folder, update)


def folder_content_hash(folder: Path) -> str:
    """A full revision of a local model folder: the content of every file (slow on large weights)."""
    return "content-" + _folder_digest(folder, _update_with_content)


def model_chat_template(folder: Path) -> str | None:
    """The chat template a folder's tokenizer uses, without loading the tokenizer."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("chat_template")
    return None

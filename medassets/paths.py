"""Where medassets reads its configuration and keeps its state. Each can be moved by an
environment variable; tests point them at temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


def _path(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable) or default)


def state_dir() -> Path:
    """Asset files, the response cache, prepared models and reports (git ignores it)."""
    return _path("MEDASSETS_HOME", PROJECT_ROOT / ".medassets")


def registry_path() -> Path:
    return _path("MEDASSETS_REGISTRY", DATA_DIR / "models.yaml")


def datasets_path() -> Path:
    return _path("MEDASSETS_DATASETS", DATA_DIR / "datasets.yaml")


def assets_dir() -> Path:
    return state_dir() / "assets"


def cache_path() -> Path:
    return state_dir() / "cache" / "responses.sqlite"


def models_dir() -> Path:
    return state_dir() / "models"


def reports_dir() -> Path:
    return state_dir() / "reports"

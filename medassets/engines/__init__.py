"""Backends, one file each, found by the registry entry's `backend`. Adding one is a file
with a `Backend` subclass, its entry type in `core/registry.py`, and a line below."""

from __future__ import annotations

from medassets.engines.base import Backend, Predictions, predict_in_own_process
from medassets.engines.baseline import BaselineBackend
from medassets.engines.openai_server import OpenAIBackend
from medassets.engines.vllm_offline import VLLMBackend

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (VLLMBackend(), OpenAIBackend(), BaselineBackend())}


def backend_for(spec) -> Backend:
    return BACKENDS[spec.backend]


__all__ = ["BACKENDS", "Backend", "Predictions", "backend_for", "predict_in_own_process"]

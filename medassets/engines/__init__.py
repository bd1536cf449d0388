"""Backends, one module each, found by the registry entry's `backend` (`core.registry.BACKENDS`).
Adding one is a module with its entry type, a `Backend` subclass and its `BACKEND`, and a
line in that table."""

from __future__ import annotations

from medassets.engines.base import Backend, Batch, Predictions, answer_key, backend_for, engine_groups, output_version, predict_in_own_process

__all__ = ["Backend", "Batch", "Predictions", "answer_key", "backend_for", "engine_groups", "output_version", "predict_in_own_process"]

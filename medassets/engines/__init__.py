"""Generation backends behind one interface (`Engine`), and the way to open one."""

from __future__ import annotations

from medassets.core.registry import ModelSpec
from medassets.engines.base import Engine
from medassets.engines.models import ResolvedModel


def open_engine(spec: ModelSpec, model: ResolvedModel) -> Engine:
    if spec.backend == "vllm":
        from medassets.engines.vllm_offline import VLLMEngine

        return VLLMEngine(spec, model.folder, model.chat_template)
    if spec.backend == "openai":
        from medassets.engines.openai_server import OpenAIServerEngine

        return OpenAIServerEngine(spec, model.chat_template)
    raise ValueError(f"model {spec.name!r}: backend {spec.backend!r} does not generate text")

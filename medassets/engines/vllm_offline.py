"""vLLM's offline engine: all conversations go to the scheduler at once, results are
reported request by request as the engine finishes them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medassets.core.generation import Generation, OnDone, Request
from medassets.core.registry import VLLMModel
from medassets.engines.base import GeneratingBackend
from medassets.weights.sources import ChatTemplate, source_folder, source_revision


def _configure_cpu_threads() -> None:
    """vLLM on the CPU drops to one thread unless told which cores to bind (ENVIRONMENT.md)."""
    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")


class VLLMBackend(GeneratingBackend):
    name = "vllm"

    def revision(self, spec: VLLMModel) -> str:
        return source_revision(spec.source, spec.fingerprint)

    def gpus(self, spec: VLLMModel) -> int:
        return spec.tensor_parallel_size

    def describe(self, spec: VLLMModel) -> dict[str, Any]:
        return {"dtype": spec.dtype, "tensor_parallel_size": spec.tensor_parallel_size}

    def weights_folder(self, spec: VLLMModel, models_dir: Path) -> Path:
        return source_folder(spec.source, models_dir)

    def open_engine(self, spec: VLLMModel, folder: Path, template: ChatTemplate) -> VLLMEngine:
        return VLLMEngine(spec, folder, template.text)


class VLLMEngine:
    def __init__(self, spec: VLLMModel, folder: Path, chat_template: str | None):
        import torch

        if not torch.cuda.is_available():
            _configure_cpu_threads()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
        from vllm import LLM

        self.spec = spec
        self.chat_template = chat_template
        self.llm = LLM(
            model=str(folder),
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            seed=spec.sampling.seed,
            enforce_eager=not torch.cuda.is_available(),
        )

    def _sampling_params(self, choices: tuple[str, ...] | None):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        sampling = self.spec.sampling
        return SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            structured_outputs=StructuredOutputsParams(choice=list(choices)) if choices else None,
        )

    def describe(self) -> dict[str, Any]:
        import torch
        import vllm

        return {
            "vllm_version": vllm.__version__,
            "torch_version": torch.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        }

    def generate(self, requests: Sequence[Request], on_done: OnDone) -> None:
        params = {choices: self._sampling_params(choices) for choices in {request.choices for request in requests}}
        request_ids = self.llm.enqueue_chat(
            [request.messages for request in requests],
            [params[request.choices] for request in requests],
            use_tqdm=False,
            chat_template=self.chat_template,
        )
        # enqueue_chat returns internal ids, "<external id>-<random suffix>"; outputs carry
        # the external id.
        index_of = {request_id.rsplit("-", 1)[0]: i for i, request_id in enumerate(request_ids)}
        engine = self.llm.llm_engine
        while engine.has_unfinished_requests():
            for output in engine.step():
                if output.finished:
                    completion = output.outputs[0]
                    on_done(
                        index_of[output.request_id],
                        Generation(
                            text=completion.text,
                            reasoning=None,
                            finish_reason=completion.finish_reason,
                            prompt_tokens=len(output.prompt_token_ids or ()),
                            completion_tokens=len(completion.token_ids),
                        ),
                    )

    def close(self) -> None:
        # Without an explicit shutdown the engine's child process outlives the step (ENVIRONMENT.md).
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm

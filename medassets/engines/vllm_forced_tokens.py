"""A vLLM logits processor that makes a request generate the tokens it names, so that scoring
reads a phrase's log-probabilities while decoding it. vLLM reports a generated token's
log-probability as the model gave it, before any logits processor (its default
`logprobs_mode`, `raw_logprobs`), so forcing a token leaves its log-probability as it was.
Imported by the `vllm` engine only, where vLLM is installed."""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

FORCED_TOKENS = "medassets_forced_tokens"  # the key of `SamplingParams.extra_args` naming the tokens to generate


class ForcedTokens(LogitsProcessor):
    """Leaves, for each request naming forced tokens, only the next of them possible; other
    requests are untouched."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        # batch row -> (the tokens to generate, the request's output tokens so far: vLLM's own list)
        self.forced: dict[int, tuple[list[int], list[int]]] = {}

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def forced_tokens(params, _prompt, output):
            tokens = (params.extra_args or {}).get(FORCED_TOKENS)
            return (tokens, output) if tokens else None

        process_dict_updates(self.forced, batch_update, forced_tokens)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.forced:
            return logits
        rows = torch.tensor(list(self.forced), device=self.device)
        tokens = torch.tensor([tokens[len(output)] for tokens, output in self.forced.values()], device=self.device)
        kept = logits[rows, tokens]
        logits[rows] = float("-inf")
        logits[rows, tokens] = kept
        return logits

"""Generating answers for a batch of prompts through a response cache, with progress.

Only cache misses go to the engine, all together; each finished answer is cached at once,
so an interrupted run resumes where it stopped. The engine is opened only when needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medassets.core.cache import Generation, ResponseCache, cache_key


@dataclass
class GenerationStats:
    total: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else 0.0


class Progress:
    """Reports done/total, tokens/s and ETA at most every `every_s` seconds."""

    def __init__(self, total: int, report: Callable[[str], None], every_s: float = 5.0):
        self.total, self.report, self.every_s = total, report, every_s
        self.done = self.tokens = 0
        self.start = self.last = time.monotonic()

    def update(self, tokens: int) -> None:
        self.done += 1
        self.tokens += tokens
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed else 0.0
            eta = (self.total - self.done) / rate if rate else float("inf")
            self.report(
                f"generated {self.done}/{self.total}, {self.tokens / elapsed:.1f} tokens/s, "
                f"ETA {eta:.0f} s"
            )


def build_messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return system + [{"role": "user", "content": prompt}]


def generate_cached(
    conversations: Sequence[list[dict[str, str]]],
    *,
    cache: ResponseCache,
    key_fields: dict[str, Any],
    open_engine: Callable[[], Any],
    report: Callable[[str], None],
) -> tuple[list[Generation], GenerationStats]:
    """One generation per conversation; `key_fields` are cache_key's arguments but messages."""
    start = time.monotonic()
    keys = [cache_key(messages=list(messages), **key_fields) for messages in conversations]
    cached = cache.get_many(keys)
    results: list[Generation | None] = [cached.get(key) for key in keys]
    misses = [i for i, result in enumerate(results) if result is None]
    stats = GenerationStats(total=len(keys), cache_hits=len(keys) - len(misses), cache_misses=len(misses))
    report(f"{stats.cache_hits} of {stats.total} answers are cached; {len(misses)} to generate")
    if misses:
        engine = open_engine()
        stats.engine = engine.describe()
        progress = Progress(len(misses), report)
        generation_start = time.monotonic()

        def on_done(miss_index: int, generation: Generation) -> None:
            index = misses[miss_index]
            cache.put(keys[index], generation)
            results[index] = generation
            progress.update(generation.completion_tokens)

        engine.generate([conversations[i] for i in misses], on_done)
        stats.completion_tokens = progress.tokens
        stats.wall_s = time.monotonic() - generation_start
    else:
        stats.wall_s = time.monotonic() - start
    missing = [i for i, result in enumerate(results) if result is None]
    if missing:
        raise RuntimeError(f"the engine returned no answer for {len(missing)} of {len(keys)} prompts")
    return results, stats

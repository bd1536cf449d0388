"""What an engine answered, as data: one `Generation` per request, and a model's predictions
frames built from them (`PREDICTION_COLUMNS`), with the readers every later stage uses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from medassets.core.asking import TaskRequests

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


def positive_share(choice_logprobs: Sequence[float]) -> float:
    """The first choice's probability as a share of all the choices' (a softmax of the log-probabilities)."""
    top = max(choice_logprobs)
    weights = [math.exp(logprob - top) for logprob in choice_logprobs]
    return weights[0] / sum(weights)


def scored_generation(choice_logprobs: Sequence[float], prompt_tokens: int) -> Generation:
    """A scored item: no text, the log-probability of each of its choices (the positive first)."""
    return Generation("", None, SCORED, prompt_tokens, 0, [float(logprob) for logprob in choice_logprobs])


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

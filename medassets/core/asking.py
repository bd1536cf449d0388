"""What an engine is asked: a task's test items as one model asks them (the variant's wording,
its few-shot turns, its system prompt, the reply's opening, the answers it may choose between),
the train rows a learned cut-off is chosen on, and each item's samples with their seeds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from medassets.core.prompts import Messages, answer_phrases, conversation, example_turns, few_shot_examples, render, variant_prompts
from medassets.core.registry import Sampling
from medassets.tasks import TASKS


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


@dataclass(frozen=True)
class TaskRequests:
    """A task's test items, in test order, as one model asks them."""

    ids: Sequence[str]
    prompt_hashes: Sequence[str]
    requests: Sequence[Request]  # empty for a backend that generates nothing


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


def sampled_requests(rows: TaskRequests, samples: int, sampling: Sampling | None) -> list[Request]:
    """A task's requests once per sample, sample by sample (every item's sample 0, then every
    item's sample 1...), each with its `item_seed` where `sampling` samples (a temperature above
    0); None: scored, no seed."""
    seeded = sampling is not None and sampling.temperature > 0
    return [
        replace(request, seed=item_seed(sampling.seed, sample, request.messages)) if seeded else request
        for sample in range(samples) for request in rows.requests
    ]

"""Prompts: the wordings a model can be asked in, the test rows rendered in each, and the
few-shot examples drawn from the train rows.

Every wording lives here. `paper` is Table 2, verbatim (`tasks.py`); other variants ask for
the same two answer phrases, so answers parse the same way. A wording's version changes
exactly when its text does, and makes results stale.
"""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np
import pandas as pd

from medassets.tasks import SOCIAL_MEDIA, TASK_KEYS, TASKS

PAPER = "paper"

_CONCISE_SOCIAL_MEDIA = (
    "Tweet: {{text}}\n"
    "Is the user self-reporting {{task}}? Reply with one sentence: "
    '"the tweet is self-reporting {{task}}" or "the tweet is not self-reporting {{task}}".'
)
_CONCISE_CLINICAL = {
    "stigma_labeling": (
        "Clinical note: {{text}}\n"
        "Does the note use language that could stigmatize or negatively label the patient? "
        'Reply with one phrase: "the note involves" or "the note does not involve".'
    ),
    "medication_change_discussion": (
        "Clinical note: {{text}}\n"
        "Is a change of medication discussed? Reply with one sentence: "
        '"the presence of a medication change is discussed" or '
        '"the presence of a medication change is not discussed".'
    ),
}

# variant -> task -> template with {{task}} and {{text}} placeholders
VARIANTS: dict[str, dict[str, str]] = {
    PAPER: {task: TASKS[task].template for task in TASK_KEYS},
    "concise": {
        task: _CONCISE_SOCIAL_MEDIA if TASKS[task].domain == SOCIAL_MEDIA else _CONCISE_CLINICAL[task]
        for task in TASK_KEYS
    },
}

Messages = list[dict[str, str]]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def render(task: str, text: str, variant: str = PAPER) -> str:
    """The prompt for one text in a variant's wording."""
    template = VARIANTS[variant][task].replace("{{task}}", TASKS[task].task_phrase or "")
    return template.replace("{{text}}", text)


def template_version(task: str, variant: str = PAPER) -> str:
    """Changes exactly when the variant's prompt text for the task changes."""
    return text_hash(f"{VARIANTS[variant][task]}\n{TASKS[task].task_phrase}")


def templates_version() -> str:
    """Changes when any wording of any task changes."""
    return text_hash("+".join(template_version(task, variant) for variant in VARIANTS for task in TASK_KEYS))


def answer_phrases(task: str) -> tuple[str, str]:
    """The positive and the negative answer the prompts ask for."""
    spec = TASKS[task]
    return spec.positive_phrase, spec.negative_phrases[0]


def render_prompts(task: str, test_rows: pd.DataFrame) -> pd.DataFrame:
    """id, label, variant, prompt and prompt_hash for each test row in each variant."""
    frames = []
    for variant in VARIANTS:
        prompts = test_rows["text"].map(partial(render, task, variant=variant))
        frames.append(pd.DataFrame({
            "id": test_rows["id"].to_numpy(), "label": test_rows["label"].to_numpy(), "variant": variant,
            "prompt": prompts.to_numpy(), "prompt_hash": prompts.map(text_hash).to_numpy(),
        }))
    frame = pd.concat(frames, ignore_index=True)
    return frame.astype({"id": "string", "variant": "string", "prompt": "string", "prompt_hash": "string"})


def variant_prompts(prompts: pd.DataFrame, variant: str = PAPER) -> pd.DataFrame:
    """The test prompts of one variant, in test order."""
    return prompts[prompts["variant"] == variant].reset_index(drop=True)


def few_shot_examples(train_rows: pd.DataFrame, shots: int, seed: int) -> pd.DataFrame:
    """`shots` rows of the train split, stratified by label: each label gets shots // 2, the
    odd one goes to the more frequent label. The same seed gives the same examples whatever
    the rows' order; the examples come in a seeded order."""
    if shots == 0:
        return train_rows.iloc[:0]
    counts = train_rows["label"].value_counts()
    wanted = {label: shots // 2 for label in (1, 0)}
    wanted[int(counts.idxmax()) if len(counts) else 0] += shots % 2
    rng = np.random.default_rng(seed)
    chosen = []
    for label, k in wanted.items():
        pool = train_rows[train_rows["label"] == label].sort_values("id")
        if len(pool) < k:
            raise ValueError(f"{shots}-shot prompts need {k} train rows labelled {label}; the train split has {len(pool)}")
        chosen.append(pool.iloc[rng.choice(len(pool), size=k, replace=False)])
    examples = pd.concat(chosen)
    return examples.iloc[rng.permutation(len(examples))].reset_index(drop=True)


def conversation(prompt: str, *, system_prompt: str | None = None, examples: Messages = (), reply_prefix: str | None = None) -> Messages:
    """The messages of one request: a system message, example turns, the prompt, then the start of
    the reply as an assistant turn, which the engine continues (`continues_reply`)."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    reply = [{"role": "assistant", "content": reply_prefix}] if reply_prefix else []
    return system + list(examples) + [{"role": "user", "content": prompt}] + reply


def continues_reply(messages: Messages) -> bool:
    """Whether the messages end with the start of the reply (an assistant turn) for the model to continue."""
    return bool(messages) and messages[-1]["role"] == "assistant"


def example_turns(task: str, examples: pd.DataFrame, variant: str = PAPER) -> Messages:
    """Each example as a user turn in the variant's wording and the right answer after it."""
    positive, negative = answer_phrases(task)
    turns: Messages = []
    for text, label in zip(examples["text"], examples["label"]):
        turns += [
            {"role": "user", "content": render(task, text, variant)},
            {"role": "assistant", "content": (positive if label == 1 else negative).capitalize() + "."},
        ]
    return turns

"""Turn a model's answer into a binary label with the task's answer phrases.

Rules:
- Reasoning: the text before the last closing ``</think>`` is reasoning, with or without
  an opening tag (DeepSeek-R1 distills put ``<think>`` in the prompt). An opening tag
  left unclosed after that means the answer never came: invalid, "reasoning_cut_off" when
  the answer stopped at `max_tokens` (finish reason "length"), else "reasoning_unclosed".
  Reasoning never decides a label.
- Matching is on normalized text (NFKC, case-folded, unicode dashes and curly quotes made
  ASCII, markdown emphasis removed, whitespace collapsed, "self reporting" read as
  "self-reporting"); a phrase matches only as whole words.
- Only the positive phrase stated: 1; only a negative phrase: 0; both or neither: invalid.
  The positive phrase is looked for outside the negative statements, so it can never be
  found inside one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from medassets.tasks import TASKS

EMPTY = "empty"
REASONING_CUT_OFF = "reasoning_cut_off"  # stopped at max_tokens inside its reasoning
REASONING_UNCLOSED = "reasoning_unclosed"  # reasoning never closed, the answer ended some other way (or how is unknown)
NO_PHRASE = "no_phrase"
BOTH_PHRASES = "both_phrases"
INVALID_REASONS = (EMPTY, REASONING_CUT_OFF, REASONING_UNCLOSED, NO_PHRASE, BOTH_PHRASES)
CUT_AT_MAX_TOKENS = "length"  # the finish reason of an answer that stopped at max_tokens (vLLM, OpenAI)

_OPEN = re.compile(r"<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_LEADING_OPEN = re.compile(r"^\s*<think>", re.IGNORECASE)

_TO_ASCII = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
        **dict.fromkeys("*_`", None),  # markdown emphasis and code
    }
)
_SELF_REPORTING = re.compile(r"\bself(?:\s*-\s*|\s+)reporting\b")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedAnswer:
    label: int | None  # 1, 0, or None when invalid
    answer: str  # the text after any reasoning, stripped
    reasoning: str | None
    invalid_reason: str | None  # None when valid, else one of INVALID_REASONS


def normalize(text: str) -> str:
    """The form answers and phrases are matched in."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TO_ASCII)
    text = _WHITESPACE.sub(" ", text)
    return _SELF_REPORTING.sub("self-reporting", text).strip()


@cache
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the phrases as whole words, longest first."""
    alternatives = sorted((re.escape(normalize(p)) for p in phrases), key=len, reverse=True)
    return re.compile(rf"\b(?:{'|'.join(alternatives)})\b")


def _split_reasoning(text: str) -> tuple[str | None, str, bool]:
    """Split raw model output into (reasoning, answer, reasoning left unclosed)."""
    closes = list(_CLOSE.finditer(text))
    head, answer = (text[: closes[-1].start()], text[closes[-1].end() :]) if closes else ("", text)
    opening = _OPEN.search(answer)
    if opening:  # a reasoning block that never closed: everything from it on is reasoning
        head, answer = head + answer[opening.start() :], answer[: opening.start()]
    reasoning = _LEADING_OPEN.sub("", head).strip() or None
    return reasoning, answer.strip(), opening is not None


def _label(
    answer: str, positive_phrase: str, negative_phrases: tuple[str, ...]
) -> tuple[int | None, str | None]:
    """(label, invalid_reason) of a non-empty answer."""
    normalized = normalize(answer)
    negative = _phrase_pattern(negative_phrases)
    has_negative = negative.search(normalized) is not None
    # " | " keeps the text on either side of a removed negative from joining into a phrase.
    outside_negatives = negative.sub(" | ", normalized)
    has_positive = _phrase_pattern((positive_phrase,)).search(outside_negatives) is not None
    if has_positive and has_negative:
        return None, BOTH_PHRASES
    if not (has_positive or has_negative):
        return None, NO_PHRASE
    return (1 if has_positive else 0), None


def parse_answer(
    task: str, text: str | None, reasoning: str | None = None, *, reasoning_model: bool = False, finish_reason: str | None = None
) -> ParsedAnswer:
    """Parse one answer to `task`'s prompt.

    `reasoning` is reasoning a server returned in a separate field (vLLM's
    `reasoning_content`); when given it is the reasoning, and any think block in `text`
    is still cut off the answer. Given with no answer after it, in an answer that stopped at
    max_tokens, the answer was cut off inside its reasoning.

    `reasoning_model`: the model thinks before it answers, its opening tag in the prompt
    (DeepSeek-R1 distills). Then text with no closing `</think>` is reasoning that never
    reached an answer: invalid, whatever phrases it contains.

    `finish_reason`: how the engine says the answer ended; "length" (max_tokens reached) makes
    reasoning left unclosed "reasoning_cut_off" rather than "reasoning_unclosed".
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    spec = TASKS[task]
    text = text or ""
    never_closed = REASONING_CUT_OFF if finish_reason == CUT_AT_MAX_TOKENS else REASONING_UNCLOSED
    if reasoning_model and reasoning is None and _CLOSE.search(text) is None and text.strip():
        return ParsedAnswer(label=None, answer="", reasoning=_LEADING_OPEN.sub("", text).strip(), invalid_reason=never_closed)
    found_reasoning, answer, unclosed = _split_reasoning(text)
    reasoning_apart = reasoning is not None
    reasoning = found_reasoning if reasoning is None else (reasoning.strip() or None)
    if unclosed:
        label, invalid_reason = None, never_closed
    elif not answer and reasoning_apart and reasoning and finish_reason == CUT_AT_MAX_TOKENS:
        label, invalid_reason = None, REASONING_CUT_OFF
    elif not answer:
        label, invalid_reason = None, EMPTY
    else:
        label, invalid_reason = _label(answer, spec.positive_phrase, spec.negative_phrases)
    return ParsedAnswer(
        label=label, answer=answer, reasoning=reasoning, invalid_reason=invalid_reason
    )


def reasoning_token_count(token_ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> int:
    """How many of an answer's leading tokens hold its reasoning: the fewest whose text holds every
    closing `</think>` of the whole answer; 0 when none closes (an unclosed reasoning is counted by
    its reader, who knows whether the model reasons)."""
    closing_tags = len(_CLOSE.findall(decode(token_ids)))
    if not closing_tags:
        return 0
    low, high = 1, len(token_ids)
    while low < high:  # a longer prefix never holds fewer closing tags
        middle = (low + high) // 2
        if len(_CLOSE.findall(decode(token_ids[:middle]))) >= closing_tags:
            high = middle
        else:
            low = middle + 1
    return low

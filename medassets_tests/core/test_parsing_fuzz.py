"""Property-based tests of answer parsing (the rules in core/parsing.py), with hypothesis: any text parses
without raising, and the label of an answer built from the task's phrases is what the rules
say, whatever its case, whitespace, markdown emphasis, dashes and quotes, and its reasoning.
Examples are derandomized (medassets_tests/conftest.py): the same ones on every run."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from medassets.core.parsing import INVALID_REASONS, parse_answer
from medassets.tasks import TASK_KEYS, TASKS

tasks = st.sampled_from(TASK_KEYS)

# Words that are no part of any answer phrase, so an answer's label is known by construction.
FILLER = ["Answer:", "because", "user", "mentions", "clearly", "I", "think", "so", "text", "based", "on", "this", "(yes)", "no."]
SEPARATORS = [" ", ". ", ".\n", ", ", ": ", "\n\n", " - "]
DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
DOUBLE_QUOTES = '"\u201c\u201d\u201e\u201f'
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
SPACES = [" ", "  ", "\t", "\n", " \r\n ", "\u00a0", "\u2003"]
EMPHASIS = ["", "", "**", "_", "*", "__", "***"]


@st.composite
def answers(draw):
    """(task, answer text, expected label): phrases of the task and filler, joined."""
    task = draw(tasks)
    spec = TASKS[task]
    positive = draw(st.integers(0, 2))
    negatives = draw(st.lists(st.sampled_from(spec.negative_phrases), max_size=2))
    parts = [spec.positive_phrase] * positive + negatives + draw(st.lists(st.sampled_from(FILLER), max_size=6))
    parts = draw(st.permutations(parts))
    quoted = [f'"{p}"' if draw(st.booleans()) else p for p in parts]
    separators = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(quoted), max_size=len(quoted)))
    text = "".join(part + sep for part, sep in zip(quoted, separators))
    if not text.strip():
        expected = None
    else:
        expected = 1 if positive and not negatives else 0 if negatives and not positive else None
    return task, text, expected


def variant(text: str, rnd: random.Random) -> str:
    """The same answer as a model might write it: emphasis on words, mixed case, unicode dashes
    and curly quotes, other whitespace (and "self reporting" for "self-reporting")."""
    words = []
    for word in text.split(" "):
        mark = rnd.choice(EMPHASIS)
        words.append(f"{mark}{word}{mark}" if word else word)
    text = " ".join(words)
    if rnd.random() < 0.3:
        text = text.replace("self-reporting", "self reporting")
    out = []
    for char in text:
        if char == "-":
            char = rnd.choice(DASHES)
        elif char == '"':
            char = rnd.choice(DOUBLE_QUOTES)
        elif char == "'":
            char = rnd.choice(SINGLE_QUOTES)
        elif char == " ":
            char = rnd.choice(SPACES)
        out.append(char.upper() if rnd.random() < 0.5 else char.lower())
    return "".join(out)


@settings(max_examples=1000)
@given(task=tasks, text=st.text(), reasoning=st.none() | st.text(max_size=50), reasoning_model=st.booleans())
def test_any_text_parses_and_a_label_is_none_exactly_when_a_reason_is_set(task, text, reasoning, reasoning_model):
    parsed = parse_answer(task, text, reasoning, reasoning_model=reasoning_model)
    assert parsed.label in (0, 1, None)
    assert (parsed.label is None) == (parsed.invalid_reason is not None)
    assert parsed.invalid_reason in (None, *INVALID_REASONS)


# Text that models write around answers: tags, markdown, unicode, control characters.
NOISY_TEXT = st.text(
    alphabet=st.sampled_from(list("<>/think*_`\"' -\n\t\u2014\u201cabcST.é\u0000\u200b")) | st.characters(), max_size=80
)


@settings(max_examples=500)
@given(task=tasks, text=NOISY_TEXT, answer=answers())
def test_phrases_among_noise_and_think_tags_never_raise(task, text, answer):
    _, built, _ = answer
    for candidate in (text + built, built + text, f"<think>{text}</think>{built}", f"{built}<think>{text}"):
        parsed = parse_answer(task, candidate)
        assert (parsed.label is None) == (parsed.invalid_reason is not None)


@settings(max_examples=400)
@given(answer=answers(), seed=st.integers(0, 2**32))
def test_the_label_follows_the_phrases_and_ignores_case_whitespace_emphasis_dashes_and_quotes(answer, seed):
    task, text, expected = answer
    assert parse_answer(task, text).label == expected
    written = variant(text, random.Random(seed))
    assert parse_answer(task, written).label == expected, written


@settings(max_examples=300)
@given(answer=answers(), reasoning=st.text(max_size=80), seed=st.integers(0, 2**32))
def test_reasoning_never_decides_the_label(answer, reasoning, seed):
    task, text, expected = answer
    rnd = random.Random(seed)
    spec = TASKS[task]
    # Reasoning that states phrases of its own, with or without the opening tag.
    reasoning = reasoning.replace("<", "") + " " + rnd.choice([spec.positive_phrase, spec.negative_phrases[0], ""])
    opening = rnd.choice(["<think>", ""])
    parsed = parse_answer(task, f"{opening}{reasoning}</think>{text}", reasoning_model=True)
    assert parsed.label == expected
    assert parsed.reasoning == (reasoning.strip() or None)

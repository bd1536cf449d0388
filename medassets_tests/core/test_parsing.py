import dataclasses

import pytest

from medassets.core.parsing import (
    BOTH_PHRASES,
    EMPTY,
    INVALID_REASONS,
    NO_PHRASE,
    REASONING_CUT_OFF,
    REASONING_UNCLOSED,
    ParsedAnswer,
    normalize,
    parse_answer,
    reasoning_token_count,
)
from medassets.tasks import TASK_KEYS, TASKS

BC = "breast_cancer"
STIGMA = "stigma_labeling"
MED_CHANGE = "medication_change_discussion"
COVID = "covid19_potential_case"

NEGATIVE_CASES = [(key, phrase) for key in TASK_KEYS for phrase in TASKS[key].negative_phrases]


def label(task: str, text: str) -> int | None:
    return parse_answer(task, text).label


def assert_invalid(parsed: ParsedAnswer, reason: str) -> None:
    assert (parsed.label, parsed.invalid_reason) == (None, reason)


# --- the phrases of all six tasks ---------------------------------------------------------


@pytest.mark.parametrize("task", TASK_KEYS)
def test_positive_phrase_is_1(task):
    parsed = parse_answer(task, TASKS[task].positive_phrase)
    assert (parsed.label, parsed.invalid_reason) == (1, None)


@pytest.mark.parametrize(("task", "phrase"), NEGATIVE_CASES)
def test_each_negative_phrase_is_0(task, phrase):
    parsed = parse_answer(task, phrase)
    assert (parsed.label, parsed.invalid_reason) == (0, None)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_phrases_in_a_sentence_with_explanation(task):
    spec = TASKS[task]
    explanation = " because of what the text says.\nIt mentions details that support this."
    assert label(task, spec.positive_phrase.capitalize() + explanation) == 1
    assert label(task, spec.negative_phrases[0].capitalize() + explanation) == 0


@pytest.mark.parametrize("task", TASK_KEYS)
def test_both_phrases_is_invalid(task):
    spec = TASKS[task]
    assert_invalid(
        parse_answer(task, f"{spec.negative_phrases[0]}. {spec.positive_phrase}."), BOTH_PHRASES
    )


@pytest.mark.parametrize("task", TASK_KEYS)
def test_echoed_instruction_is_invalid(task):
    """A model that repeats the prompt's 'Your answer should state ...' line states both."""
    instruction = TASKS[task].render("some text").splitlines()[-1]
    assert_invalid(parse_answer(task, instruction), BOTH_PHRASES)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_neither_phrase_is_invalid(task):
    assert_invalid(parse_answer(task, "I cannot determine this from the text."), NO_PHRASE)


def test_other_tasks_phrases_do_not_count():
    covid_positive = TASKS[COVID].positive_phrase
    assert_invalid(parse_answer(BC, covid_positive), NO_PHRASE)
    assert_invalid(parse_answer(STIGMA, TASKS[MED_CHANGE].positive_phrase), NO_PHRASE)


# --- answers as real models give them ------------------------------------------------------


def test_llama_style_answer():
    text = (
        "The tweet is self-reporting breast cancer. The user mentions their chemotherapy "
        "sessions and their oncologist, which indicates a personal diagnosis."
    )
    parsed = parse_answer(BC, text)
    assert (parsed.label, parsed.answer, parsed.reasoning) == (1, text, None)


def test_markdown_bold_answer():
    bold = "**The tweet is not self-reporting breast cancer.**"
    parsed = parse_answer(BC, f"  {bold}\n")
    assert (parsed.label, parsed.answer) == (0, bold)  # the answer keeps the original text
    assert label(BC, "The tweet __is__ *self-reporting* `breast cancer`.") == 1
    assert label(STIGMA, "**Answer:** _The note involves_ stigmatizing language.") == 1


def test_answer_in_quotes():
    assert label(BC, 'My answer: "the tweet is not self-reporting breast cancer".') == 0


def test_curly_quotes_and_unicode_dashes():
    assert label(BC, "\u201cThe tweet is self\u2010reporting breast cancer.\u201d") == 1
    assert label(BC, "The tweet is not self\u2013reporting breast cancer") == 0
    assert label(COVID, "The tweet is self\u2011reporting potential COVID\u201219 cases") == 1
    assert label(COVID, "The tweet is not self-reporting potential COVID\u221219 cases") == 0
    # an em dash right after the phrase still ends it on a word boundary
    assert label(BC, "The tweet is self-reporting breast cancer\u2014she had surgery.") == 1


def test_case_and_whitespace():
    assert label(BC, "THE TWEET IS NOT\n  SELF-REPORTING\tBREAST CANCER") == 0
    assert label(MED_CHANGE, "The presence of a medication\u00a0change is discussed.") == 1


@pytest.mark.parametrize("spelling", ["self reporting", "self - reporting", "self- reporting"])
def test_self_reporting_spellings(spelling):
    assert label(BC, f"The tweet is {spelling} breast cancer.") == 1
    assert label(BC, f"The tweet is not {spelling} breast cancer.") == 0


def test_papers_literal_negative_phrase():
    assert label(COVID, "The tweet is not self-reporting potential.") == 0
    assert label(BC, "The tweet is not self-reporting potential.") == 0


def test_literal_negative_inside_full_negative_is_one_negative():
    """'... not self-reporting potential' starts COVID's own negative: both are negatives."""
    parsed = parse_answer(COVID, "The tweet is not self-reporting potential COVID-19 cases.")
    assert (parsed.label, parsed.invalid_reason) == (0, None)


def test_phrases_match_whole_words_only():
    assert_invalid(parse_answer(STIGMA, "The note involvement is unclear."), NO_PHRASE)
    assert_invalid(parse_answer(BC, "The tweet is self-reporting breast cancers."), NO_PHRASE)
    assert_invalid(parse_answer(BC, "Retweet is self-reporting breast cancer"), NO_PHRASE)


def test_a_phrase_must_be_stated_as_given():
    """Paraphrases are not the phrase: 'This tweet ...', 'doesn't', 'a ... tweet'."""
    assert_invalid(parse_answer(BC, "This tweet is self-reporting breast cancer."), NO_PHRASE)
    assert_invalid(parse_answer(STIGMA, "The note doesn't involve stigma."), NO_PHRASE)
    assert_invalid(parse_answer(BC, "It is a self-reporting breast cancer tweet."), NO_PHRASE)


def test_small_model_contradictions():
    # 'a self-reporting breast cancer tweet' is not the positive phrase: only the negative is stated
    negative = "The tweet is not self-reporting breast cancer."
    text = f"{negative} It is a self-reporting breast cancer tweet."
    parsed = parse_answer(BC, text)
    assert (parsed.label, parsed.invalid_reason) == (0, None)
    text = f"{negative} The tweet is self-reporting breast cancer."
    assert_invalid(parse_answer(BC, text), BOTH_PHRASES)


def test_positive_is_never_found_inside_a_negative(monkeypatch):
    """A positive phrase that is part of a negative one is not counted within that negative."""
    spec = dataclasses.replace(
        TASKS[MED_CHANGE],
        key="toy",
        positive_phrase="discussed",
        negative_phrases=("not discussed",),
    )
    monkeypatch.setitem(TASKS, "toy", spec)
    assert label("toy", "A change is not discussed.") == 0
    assert label("toy", "A change is discussed.") == 1
    assert_invalid(parse_answer("toy", "Not discussed here, but discussed there."), BOTH_PHRASES)


# --- reasoning -----------------------------------------------------------------------------


def test_r1_style_think_block():
    text = (
        "<think>\nThe doctor calls the patient noncompliant.\n</think>\n\n"
        "The note involves stigmatizing language."
    )
    parsed = parse_answer(STIGMA, text)
    assert parsed == ParsedAnswer(
        label=1,
        answer="The note involves stigmatizing language.",
        reasoning="The doctor calls the patient noncompliant.",
        invalid_reason=None,
    )


def test_r1_style_without_opening_tag():
    """R1 distills get '<think>' in the prompt, so the output has only the closing tag."""
    text = (
        "Okay, let me think... the note does not involve? hmm... "
        "the patient is called drug-seeking."
        "</think> The note involves stigmatizing language"
    )
    parsed = parse_answer(STIGMA, text)
    assert (parsed.label, parsed.answer) == (1, "The note involves stigmatizing language")
    assert parsed.reasoning.startswith("Okay, let me think")


def test_reasoning_never_decides_the_label():
    text = (
        "<think>The tweet is self-reporting breast cancer? No.</think>"
        "The tweet is not self-reporting breast cancer."
    )
    assert label(BC, text) == 0
    text = "<think>The tweet is self-reporting breast cancer.</think>I am not sure."
    assert_invalid(parse_answer(BC, text), NO_PHRASE)


def test_answer_is_after_the_last_closing_tag():
    text = "<think>first</think> The note does not involve. <think>second</think> The note involves"
    parsed = parse_answer(STIGMA, text)
    assert (parsed.label, parsed.answer) == (1, "The note involves")
    assert parsed.reasoning == "first</think> The note does not involve. <think>second"


def test_unclosed_think_is_invalid():
    parsed = parse_answer(STIGMA, "<think>\nThe note involves, let me check again")
    assert_invalid(parsed, REASONING_UNCLOSED)
    assert (parsed.answer, parsed.reasoning) == ("", "The note involves, let me check again")


def test_think_reopened_after_the_last_close_is_invalid():
    parsed = parse_answer(STIGMA, "<think>a</think> The note involves <think> but wait")
    assert_invalid(parsed, REASONING_UNCLOSED)
    assert parsed.answer == "The note involves"


def test_think_tags_are_case_insensitive():
    assert label(BC, "<THINK>hm</THINK>The tweet is self-reporting breast cancer") == 1


def test_empty_think_block():
    parsed = parse_answer(STIGMA, "<think>\n\n</think>\n\nThe note does not involve")
    assert (parsed.label, parsed.reasoning) == (0, None)


def test_separate_reasoning_field():
    parsed = parse_answer(
        STIGMA,
        "\n\nThe note does not involve stigmatizing language.",
        reasoning="The note involves? No.",
    )
    assert parsed == ParsedAnswer(
        label=0,
        answer="The note does not involve stigmatizing language.",
        reasoning="The note involves? No.",
        invalid_reason=None,
    )


def test_separate_reasoning_field_with_think_block_in_text():
    parsed = parse_answer(STIGMA, "<think>inline</think>The note involves", reasoning="from server")
    assert parsed.label == 1
    assert (parsed.answer, parsed.reasoning) == ("The note involves", "from server")


def test_separate_reasoning_without_answer_is_empty():
    parsed = parse_answer(STIGMA, None, reasoning="The note involves... still thinking")
    assert_invalid(parsed, EMPTY)
    assert parsed.reasoning == "The note involves... still thinking"


# --- empty answers and errors --------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   \n\t ", "<think>all reasoning</think>\n  "])
def test_empty_answer(text):
    parsed = parse_answer(BC, text)
    assert_invalid(parsed, EMPTY)
    assert parsed.answer == ""


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'nope'") as error:
        parse_answer("nope", "The note involves")
    assert all(key in str(error.value) for key in TASK_KEYS)


def test_invalid_reasons_and_immutability():
    assert set(INVALID_REASONS) == {EMPTY, REASONING_CUT_OFF, REASONING_UNCLOSED, NO_PHRASE, BOTH_PHRASES}
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_answer(BC, "").label = 1


def test_normalize():
    text = "  **\u201cSelf  Reporting\u201d**\u2014 Caf\uff45 "
    assert normalize(text) == '"self-reporting"- cafe'


def test_reasoning_model_without_closing_tag_never_answered():
    """An R1 distill's output cut off mid-thought: the phrases in it are reasoning, not an answer."""
    thinking = "Okay, the user says chemo starts Monday, so the tweet is self-reporting breast cancer? Let me check"
    result = parse_answer("breast_cancer", thinking, reasoning_model=True)
    assert (result.label, result.invalid_reason, result.answer) == (None, "reasoning_unclosed", "")
    assert result.reasoning == thinking
    # The same text from a model that does not reason is an answer.
    assert parse_answer("breast_cancer", thinking).label == 1


def test_reasoning_model_with_closing_tag_or_reasoning_field_answers():
    text = "Chemo is treatment for cancer.</think>\n\nThe tweet is self-reporting breast cancer."
    assert parse_answer("breast_cancer", text, reasoning_model=True).label == 1
    separate = parse_answer("breast_cancer", "The tweet is not self-reporting breast cancer.", "Mentions a friend.", reasoning_model=True)
    assert (separate.label, separate.reasoning) == (0, "Mentions a friend.")
    assert parse_answer("breast_cancer", "", reasoning_model=True).invalid_reason == "empty"


# --- reasoning cut off at max_tokens ---------------------------------------------------------


@pytest.mark.parametrize("reasoning_model, text", [
    (True, "Okay, the tweet is self-reporting breast cancer? Let me"),  # the opening tag in the prompt
    (False, "<think>Okay, the tweet is self-reporting breast cancer? Let me"),
    (True, "<think>a</think> The tweet is self-reporting breast cancer <think> but"),
])
def test_reasoning_stopped_at_max_tokens_is_cut_off_never_parsed(reasoning_model, text):
    cut = parse_answer(BC, text, reasoning_model=reasoning_model, finish_reason="length")
    assert_invalid(cut, REASONING_CUT_OFF)
    # the same text that ended otherwise (an end-of-sequence token, a stop string) never closed its reasoning
    for finish_reason in ("stop", None):
        assert_invalid(parse_answer(BC, text, reasoning_model=reasoning_model, finish_reason=finish_reason), REASONING_UNCLOSED)


def test_an_answer_cut_after_its_reasoning_closed_is_parsed_as_usual():
    text = "<think>short</think> The tweet is self-reporting breast cancer and"
    assert parse_answer(BC, text, reasoning_model=True, finish_reason="length").label == 1
    assert_invalid(parse_answer(BC, "<think>short</think> The tweet", reasoning_model=True, finish_reason="length"), NO_PHRASE)


def test_reasoning_a_server_gave_apart_with_no_answer_at_max_tokens_is_cut_off():
    """vLLM's reasoning parser puts an unclosed reasoning in `reasoning_content` and no content."""
    thinking = "The tweet is self-reporting breast cancer, or is it"
    assert_invalid(parse_answer(BC, None, thinking, reasoning_model=True, finish_reason="length"), REASONING_CUT_OFF)
    assert_invalid(parse_answer(BC, None, thinking, reasoning_model=True, finish_reason="stop"), EMPTY)


class _Decoder:
    """Token ids as indices into a list of token strings, decoded by joining them."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens

    def __call__(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids)


@pytest.mark.parametrize("tokens, expected", [
    (["Hm", ",", " ok", "</", "think", ">", " The", " answer"], 6),  # the tag split over three tokens
    (["a", "</think>", "b", "</think>", " yes"], 4),  # through the last closing tag
    (["</think>"], 1),
    (["no", " reasoning", " closed"], 0),
    ([], 0),
])
def test_reasoning_tokens_are_those_through_the_last_closing_tag(tokens, expected):
    decode = _Decoder(tokens)
    assert reasoning_token_count(list(range(len(tokens))), decode) == expected
    # independently: the first prefix whose text holds as many closing tags as the whole
    whole = decode(range(len(tokens))).count("</think>")
    first = next((k for k in range(len(tokens) + 1) if whole and decode(range(k)).count("</think>") == whole), 0)
    assert expected == first

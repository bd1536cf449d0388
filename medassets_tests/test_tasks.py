"""The six task specs against the paper: Table 1's counts and Table 2's prompt templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medassets.tasks import CLINICAL_NOTE, SOCIAL_MEDIA, TASK_KEYS, TASKS

PAPER = Path("/work/shared/paper/guo-sarker-llama3-vs-deepseekr1.txt")

# Table 1 of the paper, verbatim (tab-separated, as in the paper's text).
TABLE_1 = (
    "Task\tPositive\tNegative\tTotal\t\n"
    "Breast cancer\t1283 (26%)\t3736 (74%)\t5019\t\n"
    "Changes in medication regimen\t656 (9%)\t6814 (91%)\t7470\t\n"
    "Adverse pregnancy outcomes\t2922 (45%)\t3565 (55%)\t6487\t\n"
    "Potential cases of COVID-19\t1148 (16%)\t6033 (84%)\t7181\t\n"
    "Stigma labeling\t439 (44%)\t560 (56%)\t999\t\n"
    "Medication change discussion\t1327 (20%)\t5232 (80%)\t6559\t\n"
)

# Table 2 of the paper, verbatim: first column the row label (wrapped), second the template
# (wrapped at the paper's line breaks).
TABLE_2 = (
    "Task\tPrompt Template\n"
    "Social media\tRead the following tweet. Answer if the user is self-reporting {{task}} and explain why. Tweet:{{text}}\n"
    'tasks\tYour answer should state "the tweet is self-reporting {{task}}" or "the tweet is not self-\n'
    'tasks\treporting potential".\n'
    "Stigma labeling\tRead the following clinical note.\n"
    "\tClinical note: {{text}}\n"
    "\tAnswer if this note involves language about the patient which could result in the\n"
    "\tstigmatization or negative labeling of a patient, which could lead to further status\n"
    "\tloss/discrimination in the context of the patient-provider relationship. Your answer should\n"
    '\tstate "the note involves" or "the note does not involve".\n'
    "Medication change discussion\tRead the following clinical note.\n"
    "\tClinical note: {{text}}\n"
    '\tAnswer if the presence of a medication change is discussed. Your answer should state "the\n'
    '\tpresence of a medication change is discussed" or "the presence of a medication change is not\n'
    '\tdiscussed".\n'
)

# The one correction of Table 2 (tasks.py).
PAPER_NEGATIVE = '"the tweet is not self-reporting potential"'
CORRECTED_NEGATIVE = '"the tweet is not self-reporting {{task}}"'

TABLE_2_ROWS = {
    "Social media": ("breast_cancer", "medication_regimen_change", "adverse_pregnancy_outcome", "covid19_potential_case"),
    "Stigma labeling": ("stigma_labeling",),
    "Medication change discussion": ("medication_change_discussion",),
}
TASK_PHRASES = {  # Table 2's caption
    "breast_cancer": "breast cancer",
    "medication_regimen_change": "medication regimen changes",
    "adverse_pregnancy_outcome": "adverse pregnancy outcomes",
    "covid19_potential_case": "potential COVID-19 cases",
    "stigma_labeling": None,
    "medication_change_discussion": None,
}
TABLE_1_COUNTS = {  # key: (positives, negatives, total)
    "breast_cancer": (1283, 3736, 5019),
    "medication_regimen_change": (656, 6814, 7470),
    "adverse_pregnancy_outcome": (2922, 3565, 6487),
    "covid19_potential_case": (1148, 6033, 7181),
    "stigma_labeling": (439, 560, 999),
    "medication_change_discussion": (1327, 5232, 6559),
}
SOCIAL_KEYS = TABLE_2_ROWS["Social media"]
SAMPLE_TEXT = "just got my results back, stage 2. starting treatment monday #survivor"


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def paper_templates() -> dict[str, str]:
    """Table 2's templates by row label, wrapped lines joined (a hyphen at a break joins tight)."""
    templates: dict[str, str] = {}
    current = None
    for line in TABLE_2.splitlines()[1:]:
        label, cell = line.split("\t", 1)
        if label in TABLE_2_ROWS:
            current = label
            templates[current] = cell
        else:
            previous = templates[current]
            templates[current] = previous + cell if previous.endswith("-") else f"{previous} {cell}"
    return templates


def expected_prompt(key: str, text: str) -> str:
    row = next(label for label, keys in TABLE_2_ROWS.items() if key in keys)
    template = paper_templates()[row]
    if row == "Social media":
        assert template.count(PAPER_NEGATIVE) == 1
        template = template.replace(PAPER_NEGATIVE, CORRECTED_NEGATIVE)
    return template.replace("{{task}}", TASK_PHRASES[key] or "").replace("{{text}}", text)


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text is not on this machine")
def test_embedded_tables_are_verbatim_from_the_paper():
    paper = PAPER.read_text(encoding="utf-8")
    assert TABLE_1 in paper
    assert TABLE_2 in paper


def test_table_2_reconstruction_joins_wrapped_lines():
    templates = paper_templates()
    assert set(templates) == set(TABLE_2_ROWS)
    assert '"the tweet is not self-reporting potential".' in templates["Social media"]
    assert "Tweet:{{text}} Your answer" in templates["Social media"]
    assert '"the presence of a medication change is discussed"' in templates["Medication change discussion"]


def test_every_task_has_a_template_row():
    assert sorted(k for keys in TABLE_2_ROWS.values() for k in keys) == sorted(TASK_KEYS)
    assert set(TASK_PHRASES) == set(TASK_KEYS) == set(TABLE_1_COUNTS)


@pytest.mark.parametrize("key", TASK_KEYS)
def test_render_matches_table_2(key):
    prompt = TASKS[key].render(SAMPLE_TEXT)
    assert squash(prompt) == squash(expected_prompt(key, SAMPLE_TEXT))
    assert "{{" not in prompt and "}}" not in prompt


@pytest.mark.parametrize("key", TASK_KEYS)
def test_render_keeps_the_text_exactly(key):
    text = 'line one\n  line "two" with {{task}} and {{text}}\ttabs  '
    prompt = TASKS[key].render(text)
    assert prompt.count(text) == 1


@pytest.mark.parametrize("key", TASK_KEYS)
def test_task_phrase_and_domain(key):
    spec = TASKS[key]
    assert spec.key == key
    assert spec.task_phrase == TASK_PHRASES[key]
    assert spec.domain == (SOCIAL_MEDIA if key in SOCIAL_KEYS else CLINICAL_NOTE)


@pytest.mark.parametrize("key", TASK_KEYS)
def test_answer_phrases_are_the_ones_the_prompt_asks_for(key):
    spec = TASKS[key]
    prompt = squash(spec.render(SAMPLE_TEXT))
    assert f'"{spec.positive_phrase}"' in prompt
    assert f'"{spec.negative_phrases[0]}"' in prompt


@pytest.mark.parametrize("key", SOCIAL_KEYS)
def test_social_media_negative_phrases_accept_corrected_and_literal(key):
    spec = TASKS[key]
    phrase = TASK_PHRASES[key]
    assert spec.positive_phrase == f"the tweet is self-reporting {phrase}"
    assert f"the tweet is not self-reporting {phrase}" in spec.negative_phrases
    assert "the tweet is not self-reporting potential" in spec.negative_phrases
    assert spec.negative_phrases[0] == f"the tweet is not self-reporting {phrase}"


@pytest.mark.parametrize("key", TASK_KEYS)
def test_table_1_counts(key):
    spec = TASKS[key]
    positives, negatives, total = TABLE_1_COUNTS[key]
    assert (spec.positives, spec.negatives, spec.total) == (positives, negatives, total)
    assert spec.positive_rate == pytest.approx(positives / total)


def test_table_1_counts_match_the_embedded_table_by_title():
    by_title = {spec.title: spec for spec in TASKS.values()}
    for line in TABLE_1.splitlines()[1:]:
        title, positive, negative, total, _ = line.split("\t")
        spec = by_title[title]
        assert spec.positives == int(positive.split()[0])
        assert spec.negatives == int(negative.split()[0])
        assert spec.total == int(total)
        assert f"({round(100 * spec.positive_rate)}%)" == positive.split()[1]
    assert [TASKS[k].total for k in TASK_KEYS] == [5019, 7470, 6487, 7181, 999, 6559]

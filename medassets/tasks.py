"""The six binary classification tasks of Guo & Sarker, with Table 1's counts and Table 2's prompts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SOCIAL_MEDIA = "social_media"
CLINICAL_NOTE = "clinical_note"

# Table 2, verbatim, with one correction: the paper prints the
# negative phrase as "the tweet is not self-reporting potential"; it reads
# "the tweet is not self-reporting {{task}}". Parsing accepts both.
SOCIAL_MEDIA_TEMPLATE = (
    "Read the following tweet. Answer if the user is self-reporting {{task}} and explain why. "
    "Tweet:{{text}}\n"
    'Your answer should state "the tweet is self-reporting {{task}}" or '
    '"the tweet is not self-reporting {{task}}".'
)
STIGMA_TEMPLATE = (
    "Read the following clinical note.\n"
    "Clinical note: {{text}}\n"
    "Answer if this note involves language about the patient which could result in the "
    "stigmatization or negative labeling of a patient, which could lead to further status "
    "loss/discrimination in the context of the patient-provider relationship. Your answer should "
    'state "the note involves" or "the note does not involve".'
)
MEDICATION_CHANGE_TEMPLATE = (
    "Read the following clinical note.\n"
    "Clinical note: {{text}}\n"
    'Answer if the presence of a medication change is discussed. Your answer should state "the '
    'presence of a medication change is discussed" or "the presence of a medication change is not '
    'discussed".'
)


@dataclass(frozen=True)
class TaskSpec:
    key: str
    title: str
    domain: str  # SOCIAL_MEDIA or CLINICAL_NOTE
    citation: str
    positives: int  # Table 1
    negatives: int  # Table 1
    template: str  # Table 2, with {{task}} and {{text}} placeholders
    task_phrase: str | None  # the {{task}} of the social-media template
    positive_phrase: str
    negative_phrases: tuple[str, ...]  # the first is the one the prompt asks for

    @property
    def total(self) -> int:
        return self.positives + self.negatives

    @property
    def positive_rate(self) -> float:
        return self.positives / self.total

    def render(self, text: str) -> str:
        """The prompt for one text: Table 2's template with its placeholders filled."""
        prompt = self.template.replace("{{task}}", self.task_phrase or "")
        return prompt.replace("{{text}}", text)


def _social_media(key, title, phrase, citation, positives, negatives) -> TaskSpec:
    return TaskSpec(
        key=key,
        title=title,
        domain=SOCIAL_MEDIA,
        citation=citation,
        positives=positives,
        negatives=negatives,
        template=SOCIAL_MEDIA_TEMPLATE,
        task_phrase=phrase,
        positive_phrase=f"the tweet is self-reporting {phrase}",
        negative_phrases=(
            f"the tweet is not self-reporting {phrase}",
            "the tweet is not self-reporting potential",
        ),
    )


_TASKS = (
    _social_media(
        "breast_cancer", "Breast cancer", "breast cancer",
        "Al-Garadi MA, Yang YC, Lakamana S, et al. Automatic Breast Cancer Cohort Detection "
        "from Social Media for Studying Factors Affecting Patient-Centered Outcomes. 2020.",
        1283, 3736,
    ),
    _social_media(
        "medication_regimen_change", "Changes in medication regimen",
        "medication regimen changes",
        "Magge A, Klein A, Miranda-Escalada A, et al. Overview of the Sixth Social Media Mining "
        "for Health Applications (#SMM4H) Shared Tasks at NAACL 2021.",
        656, 6814,
    ),
    _social_media(
        "adverse_pregnancy_outcome", "Adverse pregnancy outcomes", "adverse pregnancy outcomes",
        "Klein AZ, Gonzalez-Hernandez G. An annotated data set for identifying women reporting "
        "adverse pregnancy outcomes on Twitter. Data Brief. 2020;32:106249.",
        2922, 3565,
    ),
    _social_media(
        "covid19_potential_case", "Potential cases of COVID-19", "potential COVID-19 cases",
        "Klein AZ, Magge A, O'Connor K, et al. Toward Using Twitter for Tracking COVID-19: "
        "A Natural Language Processing Pipeline and Exploratory Data Set. J Med Internet Res. "
        "2021;23(1):e25314.",
        1148, 6033,
    ),
    TaskSpec(
        key="stigma_labeling",
        title="Stigma labeling",
        domain=CLINICAL_NOTE,
        citation="Walker A, Thorne A, Das S, et al. CARE-SD: classifier-based analysis for "
        "recognizing provider stigmatizing and doubt marker labels in electronic health "
        "records. JAMIA. 2024;32(2):365-374.",
        positives=439,
        negatives=560,
        template=STIGMA_TEMPLATE,
        task_phrase=None,
        positive_phrase="the note involves",
        negative_phrases=("the note does not involve",),
    ),
    TaskSpec(
        key="medication_change_discussion",
        title="Medication change discussion",
        domain=CLINICAL_NOTE,
        citation="Mahajan D, Liang JJ, Tsou CH. Toward Understanding Clinical Context of "
        "Medication Change Events in Clinical Narratives. AMIA Annu Symp Proc. 2022;2021:833-842.",
        positives=1327,
        negatives=5232,
        template=MEDICATION_CHANGE_TEMPLATE,
        task_phrase=None,
        positive_phrase="the presence of a medication change is discussed",
        negative_phrases=("the presence of a medication change is not discussed",),
    ),
)

TASKS: dict[str, TaskSpec] = {task.key: task for task in _TASKS}
TASK_KEYS: tuple[str, ...] = tuple(TASKS)


def tasks_version(*fields: str) -> str:
    """Changes exactly when one of the named fields of a task changes, or a task is added,
    removed or moved: the version of the part of this table that a piece of logic reads."""
    table = [(task.key, *(getattr(task, field) for field in fields)) for task in TASKS.values()]
    return hashlib.sha256(repr(table).encode("utf-8")).hexdigest()[:16]

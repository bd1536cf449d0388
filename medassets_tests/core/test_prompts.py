"""Prompt wordings and few-shot examples."""

import pandas as pd
import pytest

from medassets.core import prompts as prompt_logic
from medassets.core.parsing import parse_answer
from medassets.core.prompts import PAPER, VARIANTS, few_shot_examples, render, render_prompts, template_version, templates_version
from medassets.tasks import TASK_KEYS, TASKS


def _train(n=50, positives=10) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"t{i:03d}" for i in range(n)], "text": [f"text {i}" for i in range(n)], "label": [1] * positives + [0] * (n - positives)})


@pytest.mark.parametrize("shots, positives, negatives", [(2, 1, 1), (3, 1, 2), (4, 2, 2), (1, 0, 1)])
def test_examples_are_stratified_by_label(shots, positives, negatives):
    examples = few_shot_examples(_train(), shots, seed=0)
    assert (int((examples["label"] == 1).sum()), int((examples["label"] == 0).sum())) == (positives, negatives)
    assert examples["id"].is_unique


def test_the_same_seed_gives_the_same_examples_whatever_the_row_order():
    train = _train()
    shuffled = train.sample(frac=1, random_state=3)
    assert few_shot_examples(train, 4, seed=7)["id"].tolist() == few_shot_examples(shuffled, 4, seed=7)["id"].tolist()
    assert few_shot_examples(train, 4, seed=7)["id"].tolist() != few_shot_examples(train, 4, seed=8)["id"].tolist()


def test_too_few_rows_of_a_label_is_a_clear_error():
    with pytest.raises(ValueError, match="4-shot prompts need 2 train rows labelled 1; the train split has 1"):
        few_shot_examples(_train(positives=1), 4, seed=0)


def test_the_paper_variant_is_table_2_verbatim():
    for task in TASK_KEYS:
        assert render(task, "some text") == TASKS[task].render("some text")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("task", TASK_KEYS)
def test_every_variant_asks_for_the_two_answer_phrases(variant, task):
    """Answers to any wording parse with the task's phrases: the prompt quotes both."""
    prompt = render(task, "some text", variant)
    positive, negative = prompt_logic.answer_phrases(task)
    assert f'"{positive}"' in prompt and f'"{negative}"' in prompt
    assert parse_answer(task, positive).label == 1 and parse_answer(task, negative).label == 0


def test_prompts_hold_every_variant_of_each_test_row():
    test = pd.DataFrame({"id": ["a", "b"], "text": ["one", "two"], "label": [1, 0]})
    frame = render_prompts("stigma_labeling", test)
    assert len(frame) == 2 * len(VARIANTS)
    assert frame.groupby("variant")["id"].apply(list).to_dict() == {v: ["a", "b"] for v in VARIANTS}
    paper = frame[frame["variant"] == PAPER]
    assert paper["prompt"].tolist() == [TASKS["stigma_labeling"].render(t) for t in ("one", "two")]


def test_a_changed_wording_changes_its_version_and_the_prompts_version(monkeypatch):
    before = (template_version("breast_cancer", "concise"), template_version("breast_cancer"), templates_version())
    changed = dict(VARIANTS["concise"], breast_cancer=VARIANTS["concise"]["breast_cancer"] + " Be brief.")
    monkeypatch.setitem(VARIANTS, "concise", changed)
    after = (template_version("breast_cancer", "concise"), template_version("breast_cancer"), templates_version())
    assert after[0] != before[0] and after[1] == before[1] and after[2] != before[2]

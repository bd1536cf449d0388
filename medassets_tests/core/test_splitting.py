"""The seeded stratified split of each shipped sample file, and the prompts of its test part."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from medassets.core.datasets import DatasetSource, load_dataset
from medassets.core.prompts import render_prompts, template_version, variant_prompts
from medassets.core.splitting import DEFAULT_SEED, stratified_split
from medassets.tasks import TASK_KEYS, TASKS

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@cache
def _sample(task: str) -> pd.DataFrame:
    return load_dataset(DatasetSource(SAMPLES / f"{task}.csv")).frame


def sample(task: str) -> pd.DataFrame:
    return _sample(task).copy()


def parts(split: pd.DataFrame) -> dict[str, str]:
    return dict(zip(split["id"], split["part"]))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_split_is_deterministic_for_a_seed(task):
    pd.testing.assert_frame_equal(stratified_split(sample(task)), stratified_split(sample(task)))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_split_does_not_depend_on_row_order(task):
    frame = sample(task)
    shuffled = frame.sample(frac=1, random_state=7).reset_index(drop=True)
    assert shuffled["id"].tolist() != frame["id"].tolist()
    assert parts(stratified_split(shuffled)) == parts(stratified_split(frame))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_another_seed_gives_another_split(task):
    frame = sample(task)
    assert parts(stratified_split(frame, seed=DEFAULT_SEED + 1)) != parts(stratified_split(frame))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_test_share_and_class_rates(task):
    frame = sample(task)
    split = stratified_split(frame)
    test = split[split["part"] == "test"]
    train = split[split["part"] == "train"]
    assert abs(len(test) / len(split) - 0.20) <= 0.01
    overall = frame["label"].mean()
    assert abs(test["label"].mean() - overall) <= 0.01
    assert abs(train["label"].mean() - overall) <= 0.01


@pytest.mark.parametrize("task", TASK_KEYS)
def test_every_row_is_kept_exactly_once_and_unchanged(task):
    frame = sample(task)
    split = stratified_split(frame)
    assert len(split) == len(frame)
    assert split["id"].is_unique
    assert set(split["part"]) == {"train", "test"}
    merged = frame.merge(split, on="id", suffixes=("", "_split"), validate="one_to_one")
    assert len(merged) == len(frame)
    assert (merged["text"] == merged["text_split"]).all()
    assert (merged["label"] == merged["label_split"]).all()


@pytest.mark.parametrize("task", TASK_KEYS)
def test_render_prompts_one_per_test_row_with_stable_hashes(task):
    split = stratified_split(sample(task))
    test = split[split["part"] == "test"]
    prompts = variant_prompts(render_prompts(task, test))
    assert len(prompts) == len(test)
    assert prompts["id"].tolist() == test["id"].tolist()
    assert prompts["label"].tolist() == test["label"].tolist()
    assert prompts["prompt"].tolist() == [TASKS[task].render(t) for t in test["text"]]
    expected = [hashlib.sha256(p.encode("utf-8")).hexdigest()[:16] for p in prompts["prompt"]]
    assert prompts["prompt_hash"].tolist() == expected
    assert prompts["prompt_hash"].is_unique  # the sample texts are distinct
    again = variant_prompts(render_prompts(task, stratified_split(sample(task)).query("part == 'test'")))
    pd.testing.assert_frame_equal(prompts, again)


def test_prompt_hash_changes_only_with_its_text():
    test = stratified_split(sample("breast_cancer")).query("part == 'test'").reset_index(drop=True)
    before = variant_prompts(render_prompts("breast_cancer", test))
    edited = test.assign(text=test["text"].where(test.index != 0, test["text"][0] + " (edited)"))
    after = variant_prompts(render_prompts("breast_cancer", edited))
    changed = before["prompt_hash"] != after["prompt_hash"]
    assert changed.tolist() == [True] + [False] * (len(test) - 1)


def test_template_version_differs_between_tasks_with_different_prompts():
    versions = {task: template_version(task) for task in TASK_KEYS}
    assert len(set(versions.values())) == len(TASK_KEYS)
    assert versions == {task: template_version(task) for task in TASK_KEYS}

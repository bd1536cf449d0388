"""What an engine is asked: a task's requests (zero-shot, few-shot from the train rows, constrained,
the reply's opening), the train rows a cut-off is learned on, and each item's seed."""

import hashlib
import json

import pandas as pd

from medassets.core.asking import item_seed, task_choices, task_requests, threshold_rows, train_requests
from medassets.core.cache import AnswerSettings, cache_key
from medassets.core.prompts import continues_reply, render, render_prompts
from medassets.core.splitting import stratified_split

MESSAGES = [{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}]
SETTINGS = AnswerSettings(answer_key="vllm-0123", chat_template_hash="model-default")


def test_an_items_seed_is_derived_from_the_entry_seed_the_sample_and_the_item():
    def by_hand(seed, sample, messages):  # the documented derivation, written out again
        text = f"{seed}:{sample}:" + json.dumps(messages, sort_keys=True)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

    other = [{"role": "user", "content": "another item"}]
    assert item_seed(3, 1, MESSAGES) == by_hand(3, 1, MESSAGES)
    seeds = {item_seed(seed, sample, messages) for seed in (0, 3) for sample in range(3) for messages in (MESSAGES, other)}
    assert len(seeds) == 12 and all(0 <= seed < 2**31 for seed in seeds)


def _split(task="breast_cancer", n=40):
    rows = pd.DataFrame({"id": [f"r{i:02d}" for i in range(n)], "text": [f"text {i}" for i in range(n)], "label": [i % 4 == 0 for i in range(n)]})
    return stratified_split(rows.astype({"label": int}), test_share=0.25, seed=0)


def _requests(split, task="breast_cancer", **settings):
    prompts = render_prompts(task, split[split["part"] == "test"])
    options = {"variant": "paper", "shots": 0, "shot_seed": 0, "system_prompt": None, "choices": None} | settings
    return task_requests(task, prompts, split, **options)


def test_zero_shot_requests_are_the_paper_prompts_alone():
    split = _split()
    items = _requests(split)
    test = split[split["part"] == "test"]
    assert list(items.ids) == list(test["id"])
    assert [r.messages for r in items.requests] == [[{"role": "user", "content": render_prompts("breast_cancer", test)["prompt"][i]}] for i in range(len(test))]
    assert all(r.choices is None for r in items.requests)


def test_few_shot_turns_come_from_the_train_split_before_the_prompt():
    split = _split()
    items = _requests(split, shots=3, shot_seed=5, system_prompt="Be brief.", variant="concise")
    test_texts = set(split.loc[split["part"] == "test", "text"])
    train_texts = set(split.loc[split["part"] == "train", "text"])
    first = items.requests[0].messages
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    shown = [next(t for t in train_texts | test_texts if m["content"].startswith(f"Tweet: {t}\n")) for m in first[1:-1:2]]
    assert set(shown) <= train_texts  # never a test row
    answers = [m["content"] for m in first[2:-1:2]]
    assert all(a in ("The tweet is self-reporting breast cancer.", "The tweet is not self-reporting breast cancer.") for a in answers)
    assert all(r.messages[:-1] == first[:-1] for r in items.requests)  # the same examples before every prompt
    assert _requests(split, shots=3, shot_seed=5, variant="concise").requests[0].messages == first[1:]
    assert _requests(split, shots=3, shot_seed=6, variant="concise").requests[0].messages[:-1] != first[1:-1]


def test_constrained_requests_choose_between_the_two_answer_phrases():
    items = _requests(_split("stigma_labeling"), task="stigma_labeling", choices=task_choices("stigma_labeling", "constrained", "generate"))
    assert {r.choices for r in items.requests} == {("the note involves", "the note does not involve")}


def test_threshold_rows_are_a_stratified_sample_of_train_rows_only():
    split = _split(n=200)
    train = split[split["part"] == "train"]
    rows = threshold_rows(split, 40, seed=0)
    assert set(rows["id"]) <= set(train["id"])
    positives = int(train["label"].sum())
    assert rows["label"].sum() == round(positives * 40 / len(train))
    assert len(rows) - rows["label"].sum() == round((len(train) - positives) * 40 / len(train))
    assert threshold_rows(split, 40, seed=0).equals(rows) and not threshold_rows(split, 40, seed=1).equals(rows)
    assert threshold_rows(split, None, seed=0).equals(train) and threshold_rows(split, 10_000, seed=0).equals(train)
    # Test rows changed in every way change nothing.
    changed = split.copy()
    test = changed["part"] == "test"
    changed.loc[test, "label"] = 1 - changed.loc[test, "label"]
    changed.loc[test, "text"] = "changed"
    assert threshold_rows(changed, 40, seed=0).equals(rows)


def test_train_requests_ask_train_rows_as_the_test_prompts_are_asked():
    split = _split()
    train = threshold_rows(split, 6, seed=0)
    options = {"variant": "concise", "shots": 2, "shot_seed": 1, "system_prompt": "Be brief."}
    choices = task_choices("breast_cancer", "free", "likelihood")
    asked = train_requests("breast_cancer", train, split, **options, choices=choices)
    tested = _requests(split, **options, choices=choices)
    assert list(asked.ids) == train["id"].tolist()
    assert all(r.messages[:-1] == tested.requests[0].messages[:-1] and r.choices == choices for r in asked.requests)
    assert [r.messages[-1]["content"] for r in asked.requests] == [render("breast_cancer", t, "concise") for t in train["text"]]


def test_a_reply_prefix_is_the_last_turn_which_the_engine_continues():
    split = _split()
    plain, opened = _requests(split), _requests(split, reply_prefix="<think>\n")
    for asked, prefixed in zip(plain.requests, opened.requests):
        assert prefixed.messages == asked.messages + [{"role": "assistant", "content": "<think>\n"}]
        assert continues_reply(prefixed.messages) and not continues_reply(asked.messages)
        assert cache_key(SETTINGS, prefixed) != cache_key(SETTINGS, asked)  # never the answer to the other

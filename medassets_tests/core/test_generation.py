"""Generation through the response cache, without a model: what the key covers, which
prompts reach the engine, how progress reads, and the frames predict() shapes.
(The real engines: medassets_tests/engines/.)"""

import hashlib
import json
import math

import pandas as pd
import pytest

from medassets.core.cache import ResponseCache
from medassets.core.generation import (
    item_seed,
    PREDICTION_COLUMNS,
    AnswerSettings,
    Generation,
    Progress,
    Request,
    SharedEngine,
    UNRECORDED_ENGINE,
    TaskRequests,
    cache_key,
    engine_counts,
    generate_cached,
    positive_share,
    predict,
    prediction_frames,
    scored_generation,
    task_choices,
    task_requests,
    threshold_rows,
    train_requests,
    wait_for_closing_engines,
)
from medassets.core.prompts import continues_reply, render, render_prompts
from medassets.core.splitting import stratified_split
from medassets.core.registry import Sampling

MESSAGES = [{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}]
SETTINGS = AnswerSettings(answer_key="vllm-0123", chat_template_hash="model-default")


def key(messages=MESSAGES, choices=None, **changes) -> str:
    return cache_key(SETTINGS.model_copy(update=changes), Request(messages, choices))


def answer(text: str, tokens: int = 3) -> Generation:
    return Generation(text=text, reasoning=None, finish_reason="stop", prompt_tokens=20, completion_tokens=tokens)


def test_cache_key_is_deterministic():
    assert key() == key()


CHANGES = {
    "answer key": {"answer_key": "vllm-4567"},
    "chat template": {"chat_template_hash": "a1b2c3d4e5f60718"},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_cache_key_changes_with_everything_that_can_change_the_answer(change):
    assert key(**change) != key()


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Is this tweet self-reporting breast cancer ?"}],
        [{"role": "system", "content": "Answer in one sentence."}, *MESSAGES],
    ],
    ids=["message text", "system prompt"],
)
def test_cache_key_changes_with_the_messages(messages):
    assert key(messages) != key()


def test_cache_key_changes_with_constrained_choices():
    choices = ("the tweet is self-reporting breast cancer", "the tweet is not self-reporting breast cancer")
    assert key(choices=choices) != key()
    assert key(choices=choices) != key(choices=choices[::-1])


class FakeEngine:
    """Answers each conversation with its prompt upper-cased, finishing in reverse order as a
    batching engine may; `drop` lists the prompts it never answers."""

    def __init__(self, drop: tuple[str, ...] = (), name: str = "fake 1.0"):
        self.drop, self.name = drop, name
        self.batches: list[list[str]] = []
        self.seeds: list[list[int | None]] = []  # each request's own seed, batch by batch
        self.closed = False

    def describe(self) -> dict:
        return {"device": "fake"}

    def generate(self, requests, *, sampling, chat_template, on_done) -> None:
        prompts = [request.messages[-1]["content"] for request in requests]
        self.batches.append(prompts)
        self.seeds.append([request.seed for request in requests])
        for index in reversed(range(len(prompts))):
            if prompts[index] not in self.drop:
                on_done(index, answer(prompts[index].upper(), tokens=len(prompts[index])))

    def score(self, requests, *, chat_template, on_done) -> None:
        for index, request in enumerate(requests):
            on_done(index, answer(request.messages[-1]["content"].upper(), tokens=0))

    def close(self) -> None:
        self.closed = True


def generate(cache, prompts, engine, scoring=False):
    """generate_cached over single-message conversations; also what was opened and reported."""
    opened, reports = [], []

    def open_engine():
        opened.append(engine)
        return engine

    requests = [Request([{"role": "user", "content": prompt}]) for prompt in prompts]
    with SharedEngine(open_engine, reports.append) as shared:
        results, stats = generate_cached(
            requests, cache=cache, settings=SETTINGS, sampling=Sampling(), chat_template=None, engine=shared, report=reports.append,
            scoring=scoring,
        )
    return results, stats, opened, reports


def test_only_misses_go_to_the_engine(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    generate(cache, ["one", "two"], FakeEngine())

    engine = FakeEngine()
    results, stats, opened, reports = generate(cache, ["two", "three", "one", "four"], engine)
    wait_for_closing_engines()
    assert opened == [engine] and engine.batches == [["three", "four"]]
    assert [r.text for r in results] == ["TWO", "THREE", "ONE", "FOUR"]  # in the input's order
    assert (stats.total, stats.cache_hits, stats.cache_misses) == (4, 2, 2)
    assert stats.completion_tokens == len("three") + len("four")  # generated tokens only
    assert stats.engine == {"device": "fake"}
    assert engine.closed
    assert reports[0] == "2 of 4 answers are cached; 2 to generate"
    assert reports[1] == "starting the engine"
    assert reports[2].startswith("engine started in ")
    assert reports[3] == "sending 2 prompts"
    assert reports[-1].startswith("generated 2/2 in ")


def test_each_answer_records_the_engine_that_produced_it_cached_ones_included(tmp_path):
    """Answers cached by one engine release and generated by another: each keeps its own engine,
    in the cache and in the frame, and the frame's counts show both."""
    cache = ResponseCache(tmp_path / "responses.sqlite")
    generate(cache, ["one", "two"], FakeEngine(name="vllm 0.31.0"))
    cache.put(key([{"role": "user", "content": "old"}]), answer("OLD"))  # cached before engines were recorded
    results, _, _, _ = generate(cache, ["two", "three", "old"], FakeEngine(name="vllm 0.32.0"))
    wait_for_closing_engines()
    assert [r.engine for r in results] == ["vllm 0.31.0", "vllm 0.32.0", None]
    frame = prediction_frames({"stigma_labeling": TaskRequests(["a", "b", "c"], ["h"] * 3, [])}, results)["stigma_labeling"]
    assert engine_counts(frame) == {"vllm 0.31.0": 1, "vllm 0.32.0": 1, UNRECORDED_ENGINE: 1}
    assert cache.get_many([key([{"role": "user", "content": "three"}])]).popitem()[1].engine == "vllm 0.32.0"


def test_scoring_reports_what_it_does(tmp_path):
    results, _, _, reports = generate(ResponseCache(tmp_path / "responses.sqlite"), ["one", "two"], FakeEngine(), scoring=True)
    wait_for_closing_engines()
    assert [r.text for r in results] == ["ONE", "TWO"]
    assert reports[0] == "0 of 2 answers are cached; 2 to score"
    assert reports[-1].startswith("scored 2/2 in ") and "tokens/s" not in reports[-1]


def test_engine_is_not_opened_when_every_answer_is_cached(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    generate(cache, ["one", "two"], FakeEngine())
    results, stats, opened, reports = generate(cache, ["two", "one"], FakeEngine())
    assert opened == []
    assert [r.text for r in results] == ["TWO", "ONE"]
    assert (stats.cache_hits, stats.cache_misses, stats.completion_tokens, stats.engine) == (2, 0, 0, {})
    assert reports == ["2 of 2 answers are cached; 0 to generate"]


def test_an_answer_the_engine_drops_is_an_error_and_the_others_stay_cached(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    dropping = FakeEngine(drop=("two",))
    with pytest.raises(RuntimeError, match="no answer for 1 of 3 prompts"):
        generate(cache, ["one", "two", "three"], dropping)
    wait_for_closing_engines()
    assert dropping.closed
    engine = FakeEngine()
    results, stats, _, _ = generate(cache, ["one", "two", "three"], engine)
    assert engine.batches == [["two"]]
    assert [r.text for r in results] == ["ONE", "TWO", "THREE"]


def test_the_engine_is_closed_when_generation_fails(tmp_path):
    class FailingEngine(FakeEngine):
        def generate(self, requests, *, sampling, chat_template, on_done) -> None:
            raise RuntimeError("out of memory")

    engine = FailingEngine()
    with pytest.raises(RuntimeError, match="out of memory"):
        generate(ResponseCache(tmp_path / "responses.sqlite"), ["one"], engine)
    assert engine.closed


def test_progress_reads_true_from_the_first_line():
    """A batching engine prefills every prompt first: 40 s pass before the first answer, then
    answers come at 2 per second. The first line says when the first answer came; later
    lines give the recent rate and an ETA from it, not from the run's start."""
    lines = []
    progress = Progress(total=100, report=lines.append, every_s=10.0, window_s=20.0)
    start = progress.start
    progress.update(5, now=start + 40.0)
    assert lines == ["generated 1/100: the first answer came 40.0 s after the prompts went in"]
    for n in range(1, 60):
        progress.update(5, now=start + 40.0 + n * 0.5)
    assert len(lines) == 3  # every 10 s
    assert lines[-1] == "generated 41/100, 2.0 answers/s and 10.0 tokens/s lately, ETA 30 s"
    for n in range(60, 100):
        progress.update(5, now=start + 40.0 + n * 0.5)
    assert lines[-1] == f"generated 100/100 in {40.0 + 99 * 0.5:.1f} s, {500 / (40.0 + 99 * 0.5):.1f} tokens/s"


def test_progress_of_scores_gives_no_token_rate():
    """Scores generate no tokens: the lines say "scored" and give the answers' rate only."""
    lines = []
    progress = Progress(total=4, report=lines.append, every_s=1.0, window_s=20.0, scoring=True)
    start = progress.start
    for n in range(4):
        progress.update(0, now=start + 10.0 + n * 2.0)
    assert lines == [
        "scored 1/4: the first answer came 10.0 s after the prompts went in",
        "scored 2/4, 0.5 answers/s lately, ETA 4 s",
        "scored 3/4, 0.5 answers/s lately, ETA 2 s",
        "scored 4/4 in 16.0 s",
    ]


def test_predict_shapes_one_frame_per_task_in_prompt_order(tmp_path):
    def items(ids, prompts):
        return TaskRequests(ids, [f"h-{i}" for i in ids], [Request([{"role": "user", "content": p}]) for p in prompts])

    tasks = {"breast_cancer": items(["a", "b"], ["one", "two"]), "stigma_labeling": items(["c"], ["three"])}
    engine = FakeEngine()
    with SharedEngine(lambda: engine, lambda line: None) as shared:
        frames, stats = predict(
            tasks, settings=SETTINGS, sampling=Sampling(), chat_template=None, cache=ResponseCache(tmp_path / "responses.sqlite"),
            engine=shared, report=lambda line: None,
        )
    assert engine.batches == [["one", "two", "three"]]  # every task's prompts in one batch
    assert list(frames) == ["breast_cancer", "stigma_labeling"]
    for task, frame in frames.items():
        assert list(frame.columns) == PREDICTION_COLUMNS
        assert list(frame["id"]) == list(tasks[task].ids)
        assert list(frame["prompt_hash"]) == list(tasks[task].prompt_hashes)
        assert list(frame["text"]) == [r.messages[-1]["content"].upper() for r in tasks[task].requests]
    assert (stats.total, stats.cache_misses) == (3, 3)


def test_a_request_without_a_seed_of_its_own_keeps_the_key_it_had_before_samples():
    old_way = hashlib.sha256(json.dumps(SETTINGS.model_dump(mode="json") | {"messages": MESSAGES}, sort_keys=True).encode()).hexdigest()
    assert key() == old_way
    assert cache_key(SETTINGS, Request(MESSAGES, seed=1)) not in {old_way, cache_key(SETTINGS, Request(MESSAGES, seed=2))}


def test_an_items_seed_is_derived_from_the_entry_seed_the_sample_and_the_item():
    def by_hand(seed, sample, messages):  # the documented derivation, written out again
        text = f"{seed}:{sample}:" + json.dumps(messages, sort_keys=True)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

    other = [{"role": "user", "content": "another item"}]
    assert item_seed(3, 1, MESSAGES) == by_hand(3, 1, MESSAGES)
    seeds = {item_seed(seed, sample, messages) for seed in (0, 3) for sample in range(3) for messages in (MESSAGES, other)}
    assert len(seeds) == 12 and all(0 <= seed < 2**31 for seed in seeds)


def test_each_item_and_sample_is_generated_once_with_its_own_seed_and_raising_the_samples_generates_only_the_new_ones(tmp_path):
    sampling = Sampling(temperature=0.7, seed=3)
    prompts = ("one", "two")
    tasks = {"breast_cancer": TaskRequests(["a", "b"], ["h-a", "h-b"], [Request([{"role": "user", "content": p}]) for p in prompts])}
    cache = ResponseCache(tmp_path / "responses.sqlite")
    engine = FakeEngine()

    def run(samples: int):
        with SharedEngine(lambda: engine, lambda line: None) as shared:
            return predict(tasks, settings=SETTINGS, sampling=sampling, chat_template=None, cache=cache, engine=shared,
                           report=lambda line: None, samples=samples)

    def seeds(sample: int) -> list[int]:
        return [item_seed(3, sample, [{"role": "user", "content": p}]) for p in prompts]

    once, _ = run(1)
    assert once["breast_cancer"]["seed"].tolist() == seeds(0)  # two items, two seeds: a sample's answers are drawn apart
    frames, stats = run(2)
    assert engine.seeds == [seeds(0), seeds(1)] and stats.cache_misses == 2
    frames, stats = run(3)
    assert engine.seeds[2:] == [seeds(2)] and (stats.total, stats.cache_hits, stats.cache_misses) == (6, 4, 2)
    frame = frames["breast_cancer"]
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame[["id", "sample"]].values.tolist() == [["a", 0], ["b", 0], ["a", 1], ["b", 1], ["a", 2], ["b", 2]]
    assert frame["seed"].tolist() == seeds(0) + seeds(1) + seeds(2) and frame["seed"].nunique() == 6
    run(3)
    assert len(engine.seeds) == 3  # a re-run generates nothing
    cache.close()


def test_greedy_samples_keep_the_key_greedy_answers_always_had_and_are_generated_once(tmp_path):
    tasks = {"breast_cancer": TaskRequests(["a", "b"], ["h-a", "h-b"], [Request([{"role": "user", "content": p}]) for p in ("one", "two")])}
    cache = ResponseCache(tmp_path / "responses.sqlite")
    engine = FakeEngine()
    with SharedEngine(lambda: engine, lambda line: None) as shared:
        frames, stats = predict(tasks, settings=SETTINGS, sampling=Sampling(seed=3), chat_template=None, cache=cache, engine=shared,
                                report=lambda line: None, samples=3)
    assert engine.batches == [["one", "two"]] and engine.seeds == [[None, None]]  # no seed changes a greedy answer
    assert (stats.total, stats.cache_misses) == (6, 6)
    frame = frames["breast_cancer"]
    assert frame["seed"].isna().all() and frame["text"].tolist() == ["ONE", "TWO"] * 3
    first = [key([{"role": "user", "content": p}]) for p in ("one", "two")]
    assert set(cache.get_many(first)) == set(first)
    cache.close()


def test_an_engine_closes_in_the_background_and_the_next_waits_for_it(tmp_path):
    """vLLM takes seconds to shut down: the run goes on meanwhile, but two engines never overlap."""
    import threading

    events = []
    release = threading.Event()

    class SlowToClose(FakeEngine):
        def close(self) -> None:
            release.wait(10)
            events.append("closed")

    cache = ResponseCache(tmp_path / "responses.sqlite")
    first = SlowToClose()
    generate(cache, ["one"], first)
    events.append("first run returned")

    def open_second():
        events.append("second opened")
        return FakeEngine()

    threading.Timer(0.2, release.set).start()
    with SharedEngine(open_second, lambda line: None) as engine:
        generate_cached(
            [Request([{"role": "user", "content": "two"}])], cache=cache, settings=SETTINGS, sampling=Sampling(), chat_template=None,
            engine=engine, report=lambda line: None,
        )
    wait_for_closing_engines()
    assert events == ["first run returned", "closed", "second opened"]


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


def test_a_scored_answer_is_the_likelier_side_and_its_share_is_the_score():
    request = Request(MESSAGES, task_choices("breast_cancer", "free", "likelihood"))
    assert request.choices == (
        "the tweet is self-reporting breast cancer", "the tweet is not self-reporting breast cancer",
        "the tweet is not self-reporting potential",
    )
    # Both negative wordings count against the positive: 0.3 alone beats neither 0.4 nor 0.3 + 0.3.
    logprobs = [math.log(0.3), math.log(0.4), math.log(0.3)]
    assert positive_share(logprobs) == pytest.approx(0.3)
    scored = scored_generation(logprobs, prompt_tokens=17)
    assert (scored.text, scored.finish_reason, scored.prompt_tokens, scored.completion_tokens) == ("", "scored", 17, 0)  # no phrase

    def framed(logprobs):
        return prediction_frames({"breast_cancer": TaskRequests(["a"], ["h"], [request])}, [scored_generation(logprobs, 17)])["breast_cancer"].iloc[0]

    assert (framed(logprobs)["label"], framed(logprobs)["text"]) == (0, "")
    assert framed([math.log(0.6), math.log(0.3), math.log(0.1)])["label"] == 1
    assert framed([math.log(0.5), math.log(0.25), math.log(0.25)])["label"] == 0  # a tie is negative
    assert positive_share([-1000.0, -1001.0]) == pytest.approx(1 / (1 + math.exp(-1)))  # no underflow


def test_scored_answers_are_cached_with_their_logprobs_and_framed_with_their_score(tmp_path):
    request = Request(MESSAGES, task_choices("stigma_labeling", "free", "likelihood"))
    scored = scored_generation([-0.5, -2.0], prompt_tokens=9)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("k", scored)
    assert cache.get_many(["k"])["k"] == scored
    frames = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [scored])
    frame = frames["stigma_labeling"]
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame["score"].iloc[0] == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert list(frame["choice_logprobs"].iloc[0]) == [-0.5, -2.0]
    unscored = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [Generation("x", None, "stop", 1, 1)])
    assert math.isnan(unscored["stigma_labeling"]["score"].iloc[0]) and pd.isna(unscored["stigma_labeling"]["label"].iloc[0])
    # Scored when answers were cached as a phrase: framed as its score alone.
    phrased = Generation("the tweet is stigmatizing", None, "scored", 9, 0, [-0.5, -2.0])
    old = prediction_frames({"stigma_labeling": TaskRequests(["a"], ["h"], [request])}, [phrased])["stigma_labeling"].iloc[0]
    assert (old["text"], old["label"]) == ("", 1)


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


def test_reasoning_token_counts_are_cached_and_framed_unknown_where_not_counted(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    counted = Generation("a</think> The note involves", None, "stop", 5, 9, reasoning_tokens=4)
    cache.put("counted", counted)
    cache.put("old", Generation("The note involves", None, "stop", 5, 3))
    found = cache.get_many(["counted", "old"])
    assert (found["counted"].reasoning_tokens, found["old"].reasoning_tokens) == (4, None)
    frame = prediction_frames({"stigma_labeling": TaskRequests(["a", "b"], ["h"] * 2, [])}, [found["counted"], found["old"]])["stigma_labeling"]
    assert frame["reasoning_tokens"].tolist() == [4, pd.NA] and str(frame["reasoning_tokens"].dtype) == "Int64"

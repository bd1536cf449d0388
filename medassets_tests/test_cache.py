"""The response cache and generate_cached, without a model: what the key covers, durability,
and which prompts reach the engine. (The real engine: test_engine_lifecycle.py.)"""

import pytest

from medassets.core.cache import Generation, ResponseCache, cache_key
from medassets.core.generation import generate_cached

MESSAGES = [{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}]
SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 0, "stop": []}
KEY_FIELDS = {"revision": "gguf-0123", "sampling": SAMPLING, "backend": "vllm", "chat_template_hash": "model-default"}


def key(**changes) -> str:
    return cache_key(**(KEY_FIELDS | {"messages": MESSAGES} | changes))


def answer(text: str, tokens: int = 3) -> Generation:
    return Generation(text=text, reasoning=None, finish_reason="stop", prompt_tokens=20, completion_tokens=tokens)


def test_cache_key_is_deterministic():
    assert key() == key()
    assert key(sampling=dict(reversed(SAMPLING.items()))) == key()


CHANGES = {
    "revision": {"revision": "gguf-4567"},
    "message text": {"messages": [{"role": "user", "content": "Is this tweet self-reporting breast cancer ?"}]},
    "system prompt": {"messages": [{"role": "system", "content": "Answer in one sentence."}, *MESSAGES]},
    "backend": {"backend": "openai"},
    "chat template": {"chat_template_hash": "a1b2c3d4e5f60718"},
    "temperature": {"sampling": SAMPLING | {"temperature": 0.6}},
    "top_p": {"sampling": SAMPLING | {"top_p": 0.95}},
    "max_tokens": {"sampling": SAMPLING | {"max_tokens": 65}},
    "seed": {"sampling": SAMPLING | {"seed": 1}},
    "stop": {"sampling": SAMPLING | {"stop": ["\n"]}},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_cache_key_changes_with_everything_that_can_change_the_answer(change):
    assert key(**change) != key()


def test_put_then_get_many_returns_what_was_put(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    thought = Generation(text="No.", reasoning="The tweet is about a friend.", finish_reason="length", prompt_tokens=7, completion_tokens=64)
    cache.put("a", answer("Yes."))
    cache.put("b", thought)
    assert cache.get_many(["a", "missing", "b", "a"]) == {"a": answer("Yes."), "b": thought}
    cache.put("a", answer("Yes!"))  # a later put replaces
    assert cache.get_many(["a"]) == {"a": answer("Yes!")}
    cache.close()


def test_get_many_finds_keys_beyond_one_query(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    for i in range(1200):
        cache.put(f"k{i}", answer(str(i)))
    found = cache.get_many([f"k{i}" for i in range(1300)])
    assert len(found) == 1200 and found["k1199"] == answer("1199")
    cache.close()


def test_each_answer_is_durable_as_soon_as_it_is_put(tmp_path):
    path = tmp_path / "responses.sqlite"
    writer = ResponseCache(path)
    writer.put("a", answer("Yes."))
    # Another connection sees it before the writer closes: a crash now would lose nothing.
    assert ResponseCache(path).get_many(["a"]) == {"a": answer("Yes.")}
    writer.close()
    assert ResponseCache(path).get_many(["a"]) == {"a": answer("Yes.")}


class FakeEngine:
    """Answers each conversation with its prompt upper-cased, finishing in reverse order as a
    batching engine may; `drop` lists the prompts it never answers."""

    def __init__(self, drop: tuple[str, ...] = ()):
        self.drop = drop
        self.batches: list[list[str]] = []

    def describe(self) -> dict:
        return {"device": "fake"}

    def generate(self, conversations, on_done) -> None:
        prompts = [conversation[-1]["content"] for conversation in conversations]
        self.batches.append(prompts)
        for index in reversed(range(len(prompts))):
            if prompts[index] not in self.drop:
                on_done(index, answer(prompts[index].upper(), tokens=len(prompts[index])))


def generate(cache, prompts, engine):
    """generate_cached over single-message conversations; also what was opened and reported."""
    opened, reports = [], []

    def open_engine():
        opened.append(engine)
        return engine

    conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
    results, stats = generate_cached(
        conversations, cache=cache, key_fields=KEY_FIELDS, open_engine=open_engine, report=reports.append
    )
    return results, stats, opened, reports


def test_only_misses_go_to_the_engine(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    generate(cache, ["one", "two"], FakeEngine())

    engine = FakeEngine()
    results, stats, opened, reports = generate(cache, ["two", "three", "one", "four"], engine)
    assert opened == [engine] and engine.batches == [["three", "four"]]
    assert [r.text for r in results] == ["TWO", "THREE", "ONE", "FOUR"]  # in the input's order
    assert (stats.total, stats.cache_hits, stats.cache_misses) == (4, 2, 2)
    assert stats.completion_tokens == len("three") + len("four")  # generated tokens only
    assert stats.engine == {"device": "fake"}
    assert reports[0] == "2 of 4 answers are cached; 2 to generate"
    assert reports[-1].startswith("generated 2/2,")


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
    with pytest.raises(RuntimeError, match="no answer for 1 of 3 prompts"):
        generate(cache, ["one", "two", "three"], FakeEngine(drop=("two",)))
    engine = FakeEngine()
    results, stats, _, _ = generate(cache, ["one", "two", "three"], engine)
    assert engine.batches == [["two"]]
    assert [r.text for r in results] == ["ONE", "TWO", "THREE"]

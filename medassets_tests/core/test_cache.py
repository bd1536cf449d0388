"""The response cache: what was put comes back, across queries and connections, durably."""

from medassets.core.cache import ResponseCache
from medassets.core.generation import Generation


def answer(text: str, tokens: int = 3) -> Generation:
    return Generation(text=text, reasoning=None, finish_reason="stop", prompt_tokens=20, completion_tokens=tokens)


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

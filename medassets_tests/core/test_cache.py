"""The response cache: what its key covers; what was put comes back, across queries and connections, durably, with
when and how often each row was written."""

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from medassets.core.answers import Generation
from medassets.core.asking import Request
from medassets.core.cache import AnswerSettings, CacheError, ResponseCache, cache_key


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


# argv: cache file, writer name, a folder where both writers meet twice: to open the new file at
# once, then to write at once.
WRITER = """
import sys, time
from pathlib import Path
from medassets.core.cache import ResponseCache
from medassets.core.answers import Generation
path, name, meeting = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def meet(step):
    (meeting / f"{step}-{name}").touch()
    while len(list(meeting.glob(f"{step}-*"))) < 2:
        time.sleep(0.001)

meet("open")
cache = ResponseCache(path)
meet("write")
first = time.time()
for i in range(__WRITES__):
    cache.put(f"{name}-{i}", Generation(f"answer {i} of {name}", None, "stop", 1, 1))
    cache.put("shared", Generation(name, None, "stop", 1, 1))
cache.close()
print(first, time.time())
""".replace("__WRITES__", "1000")


def test_two_processes_writing_the_sqlite_file_at_once_lose_nothing(tmp_path):
    """Two writers, as two generation runs of different models, create the file and put their answers at once."""
    path = tmp_path / "cache" / "responses.sqlite"
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"writer{n}", str(meeting)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    (first0, last0), (first1, last1) = ([float(t) for t in out.split()] for out, _ in outputs)
    assert first0 < last1 and first1 < last0, "the two writers were meant to write at the same time"
    cache = ResponseCache(path)
    keys = [f"writer{n}-{i}" for n in range(2) for i in range(1000)]
    found = cache.get_many(keys + ["shared"])
    cache.close()
    assert len(found) == 2001
    assert all(found[f"writer{n}-{i}"] == Generation(f"answer {i} of writer{n}", None, "stop", 1, 1) for n in range(2) for i in range(1000))
    assert found["shared"].text in {"writer0", "writer1"}
    assert bookkeeping(path)["shared"][1] == 2000  # every write of the key both wrote was counted


def test_a_file_that_is_not_a_database_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "responses.sqlite"
    path.write_text("id,text,label\nthis is a CSV, not a cache\n" * 100)
    with pytest.raises(CacheError) as info:
        ResponseCache(path)
    message = str(info.value)
    assert str(path) in message and "not a readable SQLite database" in message
    assert f"mv {path} {path}.damaged" in message


def test_a_cache_damaged_after_it_was_opened_names_the_file_on_read(tmp_path):
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    for i in range(300):
        cache.put(f"k{i}", answer(str(i) * 50))
    cache.close()
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # keep the header page, overwrite the table's pages
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=re.escape(str(path)) + ".*Move it aside"):
        ResponseCache(path).get_many([f"k{i}" for i in range(300)])


def bookkeeping(path) -> dict[str, tuple[float | None, int]]:
    db = sqlite3.connect(path)
    try:
        return {key: (written_at, writes) for key, written_at, writes in db.execute("SELECT key, written_at, writes FROM responses")}
    finally:
        db.close()


def test_each_row_records_when_it_was_last_written_and_how_often(tmp_path):
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    before = time.time()
    cache.put("a", answer("Yes."))
    cache.put("b", answer("No."))
    first = bookkeeping(path)
    assert all(before <= written_at <= time.time() and writes == 1 for written_at, writes in first.values())
    cache.put("a", answer("Yes."))  # the same answer again: only the bookkeeping shows it
    again = bookkeeping(path)
    assert again["a"][1] == 2 and again["a"][0] >= first["a"][0]
    assert again["b"] == first["b"]
    cache.close()


def test_a_cache_written_before_the_bookkeeping_columns_is_read_and_extended(tmp_path):
    path = tmp_path / "responses.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, generation TEXT NOT NULL)")
    old.execute("INSERT INTO responses VALUES (?, ?)", ("a", json.dumps(asdict(answer("Yes.")))))
    old.commit()
    old.close()
    cache = ResponseCache(path)
    assert cache.get_many(["a"]) == {"a": answer("Yes.")}
    cache.put("b", answer("No."))
    cache.put("a", answer("Yes!"))
    assert cache.get_many(["a", "b"]) == {"a": answer("Yes!"), "b": answer("No.")}
    rows = bookkeeping(path)
    assert rows["a"][1] == 2 and rows["b"][1] == 1  # a's first write predates the count, counted as 1
    cache.close()
    ResponseCache(path).close()  # opening an extended cache again changes nothing
    assert bookkeeping(path) == rows


MESSAGES = [{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}]


SETTINGS = AnswerSettings(answer_key="vllm-0123", chat_template_hash="model-default")


def key(messages=MESSAGES, choices=None, **changes) -> str:
    return cache_key(SETTINGS.model_copy(update=changes), Request(messages, choices))


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


def test_a_request_without_a_seed_of_its_own_keeps_the_key_it_had_before_samples():
    old_way = hashlib.sha256(json.dumps(SETTINGS.model_dump(mode="json") | {"messages": MESSAGES}, sort_keys=True).encode()).hexdigest()
    assert key() == old_way
    assert cache_key(SETTINGS, Request(MESSAGES, seed=1)) not in {old_way, cache_key(SETTINGS, Request(MESSAGES, seed=2))}

"""A durable, content-addressed cache of generated responses (SQLite).

The key covers everything that can change an output: the model revision, the exact
messages, the sampling parameters (seed included), the backend and the chat template.
Each response is committed as soon as it is put, so a crash loses only what was in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Generation:
    text: str
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


def cache_key(*, revision: str, messages: list[dict], sampling: dict[str, Any], backend: str, chat_template_hash: str) -> str:
    payload = {
        "revision": revision,
        "messages": messages,
        "sampling": sampling,
        "backend": backend,
        "chat_template": chat_template_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, generation TEXT NOT NULL)"
        )
        self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, Generation]:
        found: dict[str, Generation] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, generation FROM responses WHERE key IN ({marks})", chunk
            )
            found.update((key, Generation(**json.loads(value))) for key, value in rows)
        return found

    def put(self, key: str, generation: Generation) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, generation) VALUES (?, ?)",
            (key, json.dumps(asdict(generation))),
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

"""A durable, content-addressed cache of generated responses (SQLite).

Its keys come from `generation.cache_key`: everything that can change an answer. Each
response is committed as soon as it is put, so a crash loses only what was in flight.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

from medassets.core.generation import Generation


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

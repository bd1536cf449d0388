"""A durable, content-addressed cache of generated responses: a SQLite file by default, or a
table of a team's PostgreSQL database, which runs on several machines share.

Its keys come from `cache_key`: everything that can change an answer. Each
response is committed as soon as it is put, so a crash loses only what was in flight, and
runs writing at once lose nothing (a key's answer is the same whoever writes it). Each row
also records when it was last written and how many times (`written_at`, `writes`): a greedy
answer generated again is identical, so only they show whether it was.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from medassets.core.answers import Generation
from medassets.core.asking import Request


class Cache(Protocol):
    """Where answers are kept by key (`ResponseCache`, `PostgresResponseCache`)."""

    def get_many(self, keys: list[str]) -> dict[str, Generation]: ...

    def put(self, key: str, generation: Generation) -> None: ...

    def close(self) -> None: ...


class AnswerSettings(BaseModel):
    """Everything besides the messages that can change a generated answer. The cache key
    dumps it whole, so a field added here can never be left out of it."""

    model_config = ConfigDict(frozen=True)

    answer_key: str  # engines.answer_key: the backend, the weights' revision, every answer-changing setting
    chat_template_hash: str  # of the template in effect, the model's own included


def cache_key(settings: AnswerSettings, request: Request) -> str:
    """A request's key: its settings dumped whole, its messages, its choices and its own seed where it has them."""
    payload = settings.model_dump(mode="json") | {"messages": request.messages}
    if request.choices is not None:
        payload["choices"] = list(request.choices)
    if request.seed is not None:
        payload["seed"] = request.seed
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


_CHUNK = 500  # keys per query


class CacheError(RuntimeError):
    """A response cache that cannot be opened."""


_CREATE = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, generation TEXT NOT NULL)"
# Added to the table of caches written before they existed; such rows keep NULL and 1.
_BOOKKEEPING = {"written_at": "DOUBLE PRECISION", "writes": "INTEGER NOT NULL DEFAULT 1"}


class _SQLCache:
    _mark = "?"

    @property
    def _upsert(self) -> str:
        mark = self._mark
        return (
            f"INSERT INTO responses (key, generation, written_at) VALUES ({mark}, {mark}, {mark}) ON CONFLICT (key) DO UPDATE "
            "SET generation = EXCLUDED.generation, written_at = EXCLUDED.written_at, writes = responses.writes + 1"
        )

    def _rows(self, sql: str, params: list) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _write(self, sql: str, params: tuple) -> None:
        raise NotImplementedError

    def get_many(self, keys: list[str]) -> dict[str, Generation]:
        found: dict[str, Generation] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join([self._mark] * len(chunk))
            rows = self._rows(f"SELECT key, generation FROM responses WHERE key IN ({marks})", chunk)
            found.update((key, Generation(**json.loads(value))) for key, value in rows)
        return found

    def put(self, key: str, generation: Generation) -> None:
        self._write(self._upsert, (key, json.dumps(asdict(generation)), time.time()))


_BUSY_TIMEOUT_S = 60


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """Write-ahead logging, so that readers and a writer do not block each other. Two processes
    switching a new file at once: SQLite answers the second "locked" at once, without waiting."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ResponseCache(_SQLCache):
    """The cache in a SQLite file."""

    def __init__(self, path: Path):
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._named_errors():
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
            _switch_to_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CREATE)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            for column in _BOOKKEEPING.keys() - present:
                try:
                    self._db.execute(f"ALTER TABLE responses ADD COLUMN {column} {_BOOKKEEPING[column]}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
            self._db.commit()

    @contextmanager
    def _named_errors(self):
        """SQLite's errors name no file: name it, and for a damaged file say what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:  # cannot open, locked past the timeout, disk full
            raise CacheError(f"{self._path}: the response cache cannot be used: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            raise CacheError(
                f"{self._path}: the response cache is not a readable SQLite database ({exc}). Move it aside "
                f"(mv {self._path} {self._path}.damaged); the next run starts an empty cache and generates "
                "the answers again."
            ) from exc

    def _rows(self, sql, params):
        with self._named_errors():
            return self._db.execute(sql, params).fetchall()

    def _write(self, sql, params):
        with self._named_errors():
            self._db.execute(sql, params)
            self._db.commit()

    def close(self) -> None:
        self._db.close()


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


class PostgresConnection:
    """A connection to a team's PostgreSQL database in autocommit, so that each write is
    committed as it is made; the stores in it add their own tables."""

    _mark = "%s"

    def __init__(self, url: str):
        import psycopg2  # dagster-postgres's driver

        try:
            self._db = psycopg2.connect(url, connect_timeout=10)
        except psycopg2.Error as exc:
            raise CacheError(
                f"cannot connect to the PostgreSQL database {_shown(url)} (MEDASSETS_POSTGRES_URL): "
                f"{' '.join(str(exc).split())} Check that the server runs and the URL's host, port, database and "
                "user; the password comes from PGPASSWORD or ~/.pgpass."
            ) from exc
        self._db.autocommit = True

    def _rows(self, sql, params):
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _write(self, sql, params):
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)

    def _create(self, *statements: str) -> None:
        """Runs the statements in order, each creating something if it is missing; stops quietly
        where another connection creates it at the same moment (it then creates the rest)."""
        import psycopg2.errors

        try:
            for statement in statements:
                self._write(statement, ())
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable, psycopg2.errors.DuplicateObject):
            pass

    def close(self) -> None:
        self._db.close()


class PostgresResponseCache(PostgresConnection, _SQLCache):
    """The cache in the `responses` table of a PostgreSQL database."""

    def __init__(self, url: str):
        super().__init__(url)
        self._create(_CREATE)
        present = self._rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'responses'", []
        )
        for column in _BOOKKEEPING.keys() - {name for (name,) in present}:
            self._create(f"ALTER TABLE responses ADD COLUMN IF NOT EXISTS {column} {_BOOKKEEPING[column]}")


def open_response_cache(postgres_url: str | None, sqlite_path: Path) -> ResponseCache | PostgresResponseCache:
    """The PostgreSQL cache when a URL is given, else the SQLite file."""
    return PostgresResponseCache(postgres_url) if postgres_url else ResponseCache(sqlite_path)

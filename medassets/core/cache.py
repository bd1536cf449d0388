"""A durable, content-addressed cache of generated responses: a SQLite file by default, or a
table of a team's PostgreSQL database, which runs on several machines share.

Its keys come from `generation.cache_key`: everything that can change an answer. Each
response is committed as soon as it is put, so a crash loses only what was in flight, and
runs writing at once lose nothing (a key's answer is the same whoever writes it).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

from medassets.core.generation import Generation

_CHUNK = 500  # keys per query


class CacheError(RuntimeError):
    """A response cache that cannot be opened."""


class _SQLCache:
    _mark = "?"
    _upsert = "INSERT OR REPLACE INTO responses (key, generation) VALUES (?, ?)"

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
        self._write(self._upsert, (key, json.dumps(asdict(generation))))


class ResponseCache(_SQLCache):
    """The cache in a SQLite file."""

    def __init__(self, path: Path):
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._named_errors():
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, generation TEXT NOT NULL)")
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


class PostgresResponseCache(_SQLCache):
    """The cache in the `responses` table of a PostgreSQL database."""

    _mark = "%s"
    _upsert = (
        "INSERT INTO responses (key, generation) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET generation = EXCLUDED.generation"
    )

    def __init__(self, url: str):
        import psycopg2  # dagster-postgres's driver
        import psycopg2.errors

        try:
            self._db = psycopg2.connect(url, connect_timeout=10)
        except psycopg2.Error as exc:
            raise CacheError(
                f"cannot connect to the PostgreSQL database {_shown(url)} (MEDASSETS_POSTGRES_URL): "
                f"{' '.join(str(exc).split())} Check that the server runs and the URL's host, port, database and "
                "user; the password comes from PGPASSWORD or ~/.pgpass."
            ) from exc
        self._db.autocommit = True  # each answer is committed as it is put
        try:
            self._write("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, generation TEXT NOT NULL)", ())
        except psycopg2.errors.UniqueViolation:  # another run created it at the same moment
            pass

    def _rows(self, sql, params):
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _write(self, sql, params):
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)

    def close(self) -> None:
        self._db.close()


def open_response_cache(postgres_url: str | None, sqlite_path: Path) -> ResponseCache | PostgresResponseCache:
    """The PostgreSQL cache when a URL is given, else the SQLite file."""
    return PostgresResponseCache(postgres_url) if postgres_url else ResponseCache(sqlite_path)

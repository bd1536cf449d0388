"""Adjudication of gold labels: reviewers' verdicts on test items, kept append-only in the
response cache's database (a SQLite file by default, PostgreSQL on a team instance), and what
follows from them: each item's adjudicated label, a version that changes with those labels,
and Cohen's kappa between reviewers and between original and adjudicated labels.

A verdict says the gold label is `correct`, `wrong` (with the label it should have) or
`ambiguous`. An item's current verdict is its latest, whoever gave it; earlier ones stay in
its history. Its adjudicated label is the verdict's label when `wrong`, else the original.
Comments may quote a note, so they may hold PHI: they are kept where notes are kept (this
database) and never written to logs or asset metadata.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medassets.core.cache import _BUSY_TIMEOUT_S, CacheError, PostgresConnection, _switch_to_wal

VERDICTS = ("correct", "wrong", "ambiguous")
REASONS = (
    "annotation error",
    "guideline unclear",
    "not enough context in the text",
    "text garbled or truncated",
    "other",
)
AMBIGUOUS = "ambiguous"
_MAX_COMMENT = 2000
_MAX_REVIEWER = 100


class AdjudicationError(ValueError):
    """A verdict that cannot be recorded as given."""


@dataclass(frozen=True)
class Adjudication:
    task: str
    item_id: str
    verdict: str
    label: int | None  # the label the item should have; only with `wrong`
    reason: str
    comment: str
    reviewer: str
    recorded_at: float  # seconds since the epoch


def checked(task: str, item_id: str, verdict: str, label: int | None, reason: str, comment: str, reviewer: str, original: int) -> Adjudication:
    """A verdict on an item whose gold label is `original`, checked field by field."""
    if verdict not in VERDICTS:
        raise AdjudicationError(f"verdict {verdict!r}: one of {', '.join(VERDICTS)}")
    if verdict == "wrong":
        if label not in (0, 1) or label == original:
            raise AdjudicationError(f"label: a `wrong` verdict needs the label the item should have, {1 - original}")
    elif label is not None:
        raise AdjudicationError(f"label: only a `wrong` verdict gives one (this one is {verdict!r})")
    if reason not in REASONS:
        raise AdjudicationError(f"reason {reason!r}: one of {', '.join(REASONS)}")
    reviewer = reviewer.strip()
    if not reviewer or len(reviewer) > _MAX_REVIEWER:
        raise AdjudicationError(f"reviewer: a name of 1 to {_MAX_REVIEWER} characters")
    if len(comment) > _MAX_COMMENT:
        raise AdjudicationError(f"comment: at most {_MAX_COMMENT} characters")
    return Adjudication(task, item_id, verdict, label, reason, comment.strip(), reviewer, time.time())


_COLUMNS = "task, item_id, verdict, label, reason, comment, reviewer, recorded_at"
_FIELDS = ("task TEXT NOT NULL, item_id TEXT NOT NULL, verdict TEXT NOT NULL, label INTEGER, reason TEXT NOT NULL, "
           "comment TEXT NOT NULL, reviewer TEXT NOT NULL, recorded_at DOUBLE PRECISION NOT NULL")


class _SQLAdjudications:
    _mark = "?"

    def _rows(self, sql: str, params: tuple) -> list[tuple]:
        raise NotImplementedError

    def _write(self, sql: str, params: tuple) -> None:
        raise NotImplementedError

    def add(self, adjudication: Adjudication) -> None:
        marks = ", ".join([self._mark] * 8)
        values = (adjudication.task, adjudication.item_id, adjudication.verdict, adjudication.label, adjudication.reason,
                  adjudication.comment, adjudication.reviewer, adjudication.recorded_at)
        self._write(f"INSERT INTO adjudications ({_COLUMNS}) VALUES ({marks})", values)

    def for_task(self, task: str, item_id: str | None = None) -> list[Adjudication]:
        """The task's verdicts (or one item's), oldest first."""
        sql = f"SELECT {_COLUMNS} FROM adjudications WHERE task = {self._mark}"
        params: tuple = (task,)
        if item_id is not None:
            sql, params = f"{sql} AND item_id = {self._mark}", (task, item_id)
        return [Adjudication(*row) for row in self._rows(f"{sql} ORDER BY seq", params)]


class AdjudicationStore(_SQLAdjudications):
    """Verdicts in the `adjudications` table of the SQLite response cache file. Rows cannot be
    changed or deleted (a trigger refuses)."""

    def __init__(self, path: Path):
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
            _switch_to_wal(self._db)
            self._db.execute(f"CREATE TABLE IF NOT EXISTS adjudications (seq INTEGER PRIMARY KEY AUTOINCREMENT, {_FIELDS})")
            for change in ("UPDATE", "DELETE"):
                self._db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS adjudications_no_{change.lower()} BEFORE {change} ON adjudications "
                    "BEGIN SELECT RAISE(ABORT, 'adjudications are append-only'); END"
                )
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{path}: the adjudications cannot be stored in the response cache's database: {exc}") from exc

    def _rows(self, sql, params):
        return self._db.execute(sql, params).fetchall()

    def _write(self, sql, params):
        self._db.execute(sql, params)
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class PostgresAdjudicationStore(PostgresConnection, _SQLAdjudications):
    """Verdicts in the `adjudications` table of the team's PostgreSQL database; rules turn any
    change or deletion of a row into nothing."""

    def __init__(self, url: str):
        super().__init__(url)
        self._create(
            f"CREATE TABLE IF NOT EXISTS adjudications (seq BIGSERIAL PRIMARY KEY, {_FIELDS})",
            *(f"CREATE OR REPLACE RULE adjudications_no_{change.lower()} AS ON {change} TO adjudications DO INSTEAD NOTHING"
              for change in ("UPDATE", "DELETE")),
        )


def open_adjudications(postgres_url: str | None, sqlite_path: Path) -> AdjudicationStore | PostgresAdjudicationStore:
    """The store in the response cache's database: PostgreSQL when a URL is given, else the SQLite file."""
    return PostgresAdjudicationStore(postgres_url) if postgres_url else AdjudicationStore(sqlite_path)


def current(adjudications: Iterable[Adjudication]) -> dict[str, Adjudication]:
    """Each adjudicated item's latest verdict, by item id (input oldest first)."""
    return {adjudication.item_id: adjudication for adjudication in adjudications}


def adjudicated_gold(ids: Sequence[str], gold: Sequence[int], adjudications: Iterable[Adjudication]) -> pd.DataFrame:
    """id, original, label (the adjudicated gold) and verdict (empty when none) of each item."""
    latest = current(adjudications)
    frame = pd.DataFrame({"id": pd.array(ids, dtype="string"), "original": np.asarray(gold, dtype=int)})
    verdicts = [latest[item].verdict if item in latest else "" for item in frame["id"]]
    frame["label"] = [
        latest[item].label if item in latest and latest[item].verdict == "wrong" else original
        for item, original in zip(frame["id"], frame["original"])
    ]
    frame["verdict"] = pd.array(verdicts, dtype="string")
    return frame


def labels_version(adjudications: Iterable[Adjudication]) -> str:
    """A hash of every adjudicated item's current verdict and label: it changes exactly when an
    item's adjudicated label or verdict does (comments and reviewers do not count)."""
    latest = sorted((item, a.verdict, a.label) for item, a in current(adjudications).items())
    return hashlib.sha256(json.dumps(latest).encode("utf-8")).hexdigest()[:16]


def cohen_kappa(first: Sequence, second: Sequence) -> float:
    """Cohen's kappa of two raters' categories on the same items; NaN when it is undefined
    (no items, or both raters give one and the same category to every item)."""
    a, b = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    if len(a) != len(b):
        raise ValueError(f"kappa needs the same items from both raters: {len(a)} against {len(b)}")
    if not len(a):
        return float("nan")
    categories = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    observed = float(np.mean(a == b))
    expected = sum(float(np.mean(a == category)) * float(np.mean(b == category)) for category in categories)
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


def _judged(adjudication: Adjudication, original: int) -> int | str:
    """What a verdict says the item is: its label, or `ambiguous`."""
    if adjudication.verdict == AMBIGUOUS:
        return AMBIGUOUS
    return adjudication.label if adjudication.verdict == "wrong" else original


def reviewer_agreement(adjudications: Iterable[Adjudication], gold: Mapping[str, int]) -> pd.DataFrame:
    """Cohen's kappa of each pair of reviewers over the items both judged (each reviewer's latest
    verdict: 1, 0 or ambiguous): reviewer_a, reviewer_b, items, kappa."""
    by_reviewer: dict[str, dict[str, int | str]] = {}
    for adjudication in adjudications:
        by_reviewer.setdefault(adjudication.reviewer, {})[adjudication.item_id] = _judged(adjudication, gold[adjudication.item_id])
    rows = []
    reviewers = sorted(by_reviewer)
    for position, first in enumerate(reviewers):
        for second in reviewers[position + 1 :]:
            shared = sorted(by_reviewer[first].keys() & by_reviewer[second].keys())
            kappa = cohen_kappa([by_reviewer[first][i] for i in shared], [by_reviewer[second][i] for i in shared])
            rows.append({"reviewer_a": first, "reviewer_b": second, "items": len(shared), "kappa": kappa})
    return pd.DataFrame(rows, columns=["reviewer_a", "reviewer_b", "items", "kappa"])


def original_agreement(adjudicated: pd.DataFrame) -> dict[str, float | int]:
    """Cohen's kappa between original and adjudicated labels over the items given a label by a
    verdict (`correct` or `wrong`; unreviewed and ambiguous items are left out), and how many
    labels changed, from an `adjudicated_gold` frame."""
    judged = adjudicated[adjudicated["verdict"].isin(["correct", "wrong"])]
    return {
        "items": len(judged),
        "changed": int((adjudicated["label"] != adjudicated["original"]).sum()),
        "kappa": cohen_kappa(judged["original"].tolist(), judged["label"].tolist()),
    }


def with_adjudicated_gold(labels: pd.DataFrame, adjudicated: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`labels` (task, model, id, gold, label...) with each item's gold replaced by its adjudicated
    label, from `adjudicated` (task -> an `adjudicated_gold` frame); a task without one keeps its
    gold. Raises ValueError naming the task and items when a frame lacks labelled items."""
    rescored = []
    for task, of_task in labels.groupby("task", sort=False):
        if task in adjudicated:
            by_id = adjudicated[task].set_index("id")["label"]
            missing = sorted(set(of_task["id"]) - set(by_id.index))
            if missing:
                raise ValueError(f"adjudicated_gold {task!r} lacks the labelled items {missing[:5]}: re-materialize it from the current split")
            of_task = of_task.assign(gold=by_id.reindex(of_task["id"]).astype(int).to_numpy())
        rescored.append(of_task)
    return pd.concat(rescored, ignore_index=True) if rescored else labels



def adjudication_summary(adjudicated: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per task with an `adjudicated_gold` frame: items, judged (with a current verdict), labels
    changed, ambiguous, and Cohen's kappa between original and adjudicated labels."""
    rows = []
    for task, frame in adjudicated.items():
        agreement = original_agreement(frame)
        rows.append({
            "task": task, "items": len(frame), "judged": int((frame["verdict"] != "").sum()),
            "labels_changed": agreement["changed"], "ambiguous": int((frame["verdict"] == AMBIGUOUS).sum()),
            "kappa_original_adjudicated": agreement["kappa"],
        })
    return pd.DataFrame(rows, columns=["task", "items", "judged", "labels_changed", "ambiguous", "kappa_original_adjudicated"])


def reviewer_agreement_by_task(adjudicated: Mapping[str, pd.DataFrame], verdicts: Mapping[str, Sequence[Adjudication]]) -> pd.DataFrame:
    """`reviewer_agreement` of each task with an `adjudicated_gold` frame, its original labels
    from that frame (verdicts on items outside it are left out): task, reviewer_a, reviewer_b,
    items, kappa."""
    frames = []
    for task, frame in adjudicated.items():
        gold = dict(zip(frame["id"], frame["original"].astype(int)))
        judged = [verdict for verdict in verdicts.get(task, ()) if verdict.item_id in gold]
        frames.append(reviewer_agreement(judged, gold).assign(task=task))
    columns = ["task", "reviewer_a", "reviewer_b", "items", "kappa"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)

"""Adjudications: the append-only store, adjudicated labels, their version, and Cohen's kappa."""

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from medassets.core import adjudication as adj


def _verdict(item, verdict, label=None, reviewer="ana", original=1):
    return adj.checked("breast_cancer", item, verdict, label, "annotation error", "", reviewer, original)


@dataclass(frozen=True)
class Database:
    """Where `open_adjudications` keeps the verdicts; `execute` runs a statement there outside
    the store and returns the rows it touched."""

    postgres_url: str | None
    sqlite_path: Path
    execute: Callable[[str], int]

    def change(self, sql: str) -> None:
        """An UPDATE or DELETE of verdicts: SQLite's triggers refuse it, PostgreSQL's rules turn it into nothing."""
        if self.postgres_url is None:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                self.execute(sql)
        else:
            assert self.execute(sql) == 0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def database(request, tmp_path) -> Iterator[Database]:
    """The SQLite file, or a fresh database on the session's PostgreSQL server."""
    path = tmp_path / "responses.sqlite"
    if request.param == "sqlite":
        def on_sqlite(sql):
            db = sqlite3.connect(path)
            try:
                with db:
                    return db.execute(sql).rowcount
            finally:
                db.close()

        yield Database(None, path, on_sqlite)
        return
    import psycopg2

    server = request.getfixturevalue("postgres_url")
    name = f"adjudications_{uuid.uuid4().hex}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = f"{server.rsplit('/', 1)[0]}/{name}"

    def on_postgres(sql):
        db = psycopg2.connect(url)
        db.autocommit = True
        try:
            with db.cursor() as cursor:
                cursor.execute(sql)
                return cursor.rowcount
        finally:
            db.close()

    try:
        yield Database(url, path, on_postgres)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def _open(database):
    return adj.open_adjudications(database.postgres_url, database.sqlite_path)


def _seen(adjudications):
    return [(a.item_id, a.verdict, a.label, a.reviewer) for a in adjudications]


def test_store_keeps_history_in_order_and_refuses_changes(database):
    store = _open(database)
    store.add(_verdict("i1", "wrong", 0))
    store.add(_verdict("i1", "ambiguous", reviewer="ben"))
    store.add(_verdict("i2", "correct"))
    store.close()
    reopened = _open(database)
    try:
        assert _seen(reopened.for_task("breast_cancer", "i1")) == [("i1", "wrong", 0, "ana"), ("i1", "ambiguous", None, "ben")]
        everything = reopened.for_task("breast_cancer")
        assert len(everything) == 3 and reopened.for_task("stigma_labeling") == []
        for change in ("UPDATE adjudications SET label = 1", "DELETE FROM adjudications"):
            database.change(change)
        assert reopened.for_task("breast_cancer") == everything
    finally:
        reopened.close()


def _opened_at_once(database, count):
    at_once = threading.Barrier(count)

    def opened(_):
        at_once.wait()
        return _open(database)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(opened, range(count)))


def test_two_stores_opened_at_the_same_moment_share_the_verdicts(database):
    """Two runs opening a database without the table at once: one creates it, the other finds
    it. The race is narrow, so it is run on a dropped table several times."""
    for _ in range(60):
        database.execute("DROP TABLE IF EXISTS adjudications")
        first, second = _opened_at_once(database, 2)
        try:
            first.add(_verdict("i1", "wrong", 0))
            second.add(_verdict("i1", "correct", reviewer="ben"))
            first.add(_verdict("i2", "ambiguous"))
            expected = [("i1", "wrong", 0, "ana"), ("i1", "correct", None, "ben"), ("i2", "ambiguous", None, "ana")]
            assert _seen(first.for_task("breast_cancer")) == _seen(second.for_task("breast_cancer")) == expected
        finally:
            first.close()
            second.close()
        database.change("DELETE FROM adjudications")  # the rules or triggers came with the table


@pytest.mark.parametrize(
    ("verdict", "label", "reason", "message"),
    [("maybe", None, "other", "verdict"), ("wrong", None, "other", "label"), ("wrong", 1, "other", "label"),
     ("correct", 0, "other", "only a `wrong`"), ("wrong", 0, "because", "reason")],
)
def test_odd_verdicts_are_refused(verdict, label, reason, message):
    with pytest.raises(adj.AdjudicationError, match=message):
        adj.checked("breast_cancer", "i1", verdict, label, reason, "", "ana", 1)


def test_adjudicated_gold_takes_the_latest_verdict():
    history = [_verdict("i1", "wrong", 0), _verdict("i2", "wrong", 0), _verdict("i2", "correct", reviewer="ben"), _verdict("i3", "ambiguous")]
    frame = adj.adjudicated_gold(["i0", "i1", "i2", "i3"], [1, 1, 1, 1], history)
    assert frame["label"].tolist() == [1, 0, 1, 1]
    assert frame["verdict"].tolist() == ["", "wrong", "correct", "ambiguous"]
    assert adj.original_agreement(frame)["changed"] == 1


def test_version_changes_with_labels_not_comments():
    first = [_verdict("i1", "wrong", 0)]
    same = [adj.checked("breast_cancer", "i1", "wrong", 0, "other", "a comment", "ben", 1)]
    assert adj.labels_version(first) == adj.labels_version(same)
    assert adj.labels_version(first) != adj.labels_version(first + [_verdict("i1", "correct")])


@given(st.lists(st.tuples(st.sampled_from([0, 1, "ambiguous"]), st.sampled_from([0, 1, "ambiguous"])), min_size=1, max_size=30))
def test_kappa_equals_scikit_learn(pairs):
    first, second = [str(a) for a, _ in pairs], [str(b) for _, b in pairs]
    expected = cohen_kappa_score(first, second) if len(set(first) | set(second)) > 1 else float("nan")
    assert adj.cohen_kappa(first, second) == pytest.approx(expected, nan_ok=True)


def test_reviewer_agreement_over_items_both_judged():
    history = [
        _verdict("i1", "wrong", 0, "ana"), _verdict("i1", "wrong", 0, "ben"),
        _verdict("i2", "correct", None, "ana"), _verdict("i2", "wrong", 0, "ben"),
        _verdict("i3", "correct", None, "ana"), _verdict("i3", "correct", None, "ben"),
        _verdict("i4", "ambiguous", None, "ana"),
    ]
    agreement = adj.reviewer_agreement(history, {f"i{n}": 1 for n in range(5)})
    row = agreement.iloc[0]
    assert (row["reviewer_a"], row["reviewer_b"], row["items"]) == ("ana", "ben", 3)
    assert row["kappa"] == pytest.approx(cohen_kappa_score(["0", "1", "1"], ["0", "0", "1"]))
    assert np.isnan(adj.cohen_kappa([], []))


def _labels_of_two_models():
    ids = [f"i{n}" for n in range(6)]
    gold = [1, 1, 0, 0, 1, 0]
    return pd.concat([
        pd.DataFrame({"task": "breast_cancer", "model": model, "id": ids, "gold": gold, "label": label})
        for model, label in (("a", [1, 0, 0, 1, 1, -1]), ("b", [1, 1, 1, 0, 0, 0]))
    ], ignore_index=True)


def test_adjudicated_gold_replaces_the_labels_gold_of_its_task_only():
    labels = pd.concat([_labels_of_two_models(), _labels_of_two_models().assign(task="stigma_labeling")], ignore_index=True)
    verdicts = [_verdict("i0", "wrong", 0), _verdict("i2", "wrong", 1, original=0), _verdict("i3", "ambiguous", original=0)]
    frame = adj.adjudicated_gold([f"i{n}" for n in range(6)], [1, 1, 0, 0, 1, 0], verdicts)
    rescored = adj.with_adjudicated_gold(labels, {"breast_cancer": frame})
    of_a = rescored[(rescored["task"] == "breast_cancer") & (rescored["model"] == "a")]
    assert of_a["gold"].tolist() == [0, 1, 1, 0, 1, 0]
    assert rescored[rescored["task"] == "stigma_labeling"]["gold"].tolist() == labels[labels["task"] == "stigma_labeling"]["gold"].tolist()
    with pytest.raises(ValueError, match=r"adjudicated_gold 'breast_cancer' lacks the labelled items \['i5'\]"):
        adj.with_adjudicated_gold(labels, {"breast_cancer": frame.iloc[:5]})

    summary = adj.adjudication_summary({"breast_cancer": frame}).iloc[0]
    assert (summary["items"], summary["judged"], summary["labels_changed"], summary["ambiguous"]) == (6, 3, 2, 1)
    assert summary["kappa_original_adjudicated"] == pytest.approx(cohen_kappa_score([1, 0], [0, 1]))


def test_reviewer_agreement_by_task_leaves_out_items_outside_the_frame():
    frame = adj.adjudicated_gold(["i0", "i1"], [1, 1], [])
    verdicts = [_verdict("i0", "wrong", 0), _verdict("i1", "correct"), _verdict("i0", "wrong", 0, reviewer="ben"),
                _verdict("i1", "wrong", 0, reviewer="ben"), _verdict("gone", "correct", reviewer="ben")]
    agreement = adj.reviewer_agreement_by_task({"breast_cancer": frame}, {"breast_cancer": verdicts})
    assert agreement.to_dict("records") == [
        {"task": "breast_cancer", "reviewer_a": "ana", "reviewer_b": "ben", "items": 2,
         "kappa": pytest.approx(cohen_kappa_score([0, 1], [0, 0]))},
    ]

"""Loading a task's dataset: formats, column and label mappings, and errors that name the
file, the field and the rows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from medassets.core.datasets import (
    DataError,
    DatasetSource,
    load_dataset,
    read_dataset_config,
    source_from_mapping,
)
from medassets.tasks import TASK_KEYS

DATA = Path(__file__).resolve().parents[2] / "data"
FORMATS = ("csv", "tsv", "jsonl", "parquet")
NOTE_COLUMNS = {"id": "note_id", "text": "note_text", "label": "annotation"}
YES_NO = {"yes": 1, "no": 0}


def write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def note_frame(ids, texts, labels) -> pd.DataFrame:
    return pd.DataFrame({"note_id": ids, "note_text": texts, "annotation": labels})


def source(path: Path, labels=YES_NO, **entry) -> DatasetSource:
    entry = {"path": str(path), "columns": NOTE_COLUMNS, "labels": labels, **entry}
    return source_from_mapping("stigma_labeling", entry, path.parent, "test config")


def load_error(src: DatasetSource) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(src)
    message = str(info.value)
    assert str(src.path) in message
    return message


# --- clean files -------------------------------------------------------------------------

IDS = ["n-3", "n-1", "007", "n-2", "n-10"]  # not sorted: row order must be kept
TEXTS = [
    "Pt is non-compliant with meds.",
    'Says "fine", declines follow-up; plan: see PCP',
    "Line one of the note.\nLine two, after a break.",
    "  leading and trailing spaces kept  ",
    "Résumé: café, naïve — unicode ✓",
]
LABELS = [1, 0, 0, 1, 1]
LABEL_MAPPINGS = {  # config mapping, the file's values for LABELS
    "yes-no": ({"yes": 1, "no": 0}, ["Yes", "no", "NO", " yes ", "YES"]),
    "positive-negative": ({"Positive": 1, "NEGATIVE": 0}, ["positive", "Negative", "negative", "POSITIVE", "Positive"]),
    "one-zero": ({1: 1, 0: 0}, [1, 0, 0, 1, 1]),
    "default": (None, [1, 0, 0, 1, 1]),
}


@pytest.mark.parametrize("mapping", LABEL_MAPPINGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_file_loads_unchanged(tmp_path, fmt, mapping):
    labels, values = LABEL_MAPPINGS[mapping]
    path = write(note_frame(IDS, TEXTS, values), tmp_path / f"notes.{fmt}")
    loaded = load_dataset(source(path, labels=labels))
    frame = loaded.frame
    assert loaded.dropped == []
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame["id"].tolist() == IDS
    assert frame["text"].tolist() == TEXTS
    assert frame["label"].tolist() == LABELS
    assert all(isinstance(v, str) for v in frame["id"])
    assert str(frame["label"].dtype) == "int64"


@pytest.mark.parametrize("fmt", ("jsonl", "parquet"))
def test_numeric_ids_become_strings(tmp_path, fmt):
    path = write(pd.DataFrame({"id": [30, 10, 20], "text": ["a", "b", "c"], "label": [1, 0, 1]}), tmp_path / f"d.{fmt}")
    frame = load_dataset(DatasetSource(path)).frame
    assert frame["id"].tolist() == ["30", "10", "20"]
    assert frame["label"].tolist() == [1, 0, 1]


def test_yaml_config_with_unquoted_yes_no_labels(tmp_path):
    # YAML 1.1 reads unquoted yes/no as booleans; datasets.yaml documents {yes: 1, no: 0}.
    write(note_frame(["a", "b"], ["x", "y"], ["yes", "No"]), tmp_path / "notes.csv")
    config = tmp_path / "datasets.yaml"
    config.write_text(
        "tasks:\n  stigma_labeling:\n    path: notes.csv\n"
        "    columns: {id: note_id, text: note_text, label: annotation}\n"
        "    labels: {yes: 1, no: 0}\n"
    )
    entry = read_dataset_config(config)["stigma_labeling"]
    frame = load_dataset(source_from_mapping("stigma_labeling", entry, tmp_path, str(config))).frame
    assert frame["label"].tolist() == [1, 0]


def test_format_can_be_given_for_any_extension(tmp_path):
    path = write(note_frame(["a", "b"], ["x", "y"], ["yes", "no"]), tmp_path / "export.csv")
    path = path.rename(tmp_path / "export.txt")
    assert load_dataset(source(path, format="csv")).frame["id"].tolist() == ["a", "b"]


# --- file-level errors -------------------------------------------------------------------

def test_missing_file(tmp_path):
    message = load_error(source(tmp_path / "absent.csv"))
    assert "not found" in message


def test_unknown_extension(tmp_path):
    path = tmp_path / "notes.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    message = load_error(source(path))
    assert "unknown format" in message and ".xlsx" in message


@pytest.mark.parametrize(
    "fmt, content, where",
    [("parquet", bytes(range(256)) * 8, ""), ("jsonl", b'{"note_id": "a"}\nnot json\n', "line 2: "), ("jsonl", b'{"a": 1}\n[1, 2]\n', "line 2: ")],
)
def test_unreadable_file(tmp_path, fmt, content, where):
    path = tmp_path / f"notes.{fmt}"
    path.write_bytes(content)
    message = load_error(source(path))
    assert f"{where}cannot read as {fmt}" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_column_names_field_and_column(tmp_path, fmt):
    frame = pd.DataFrame({"note_id": ["a"], "body": ["x"], "annotation": ["yes"]})
    message = load_error(source(write(frame, tmp_path / f"notes.{fmt}")))
    assert "'text' (column 'note_text')" in message
    assert "body" in message  # the columns the file does have


# --- row-level errors --------------------------------------------------------------------

ROW_PROBLEMS = {  # name: (ids, texts, labels, field, rows text, extra text in message)
    "empty text": (
        ["a", "b", "c", "d", "e"], ["ok", "", "ok", " \t\n ", "ok"], ["yes"] * 5,
        "'text'", "rows 2, 4 (2 in all)", "empty or whitespace-only text",
    ),
    "duplicate id": (
        ["a", "b", "a", "c", "b"], ["t1", "t2", "t3", "t4", "t5"], ["no"] * 5,
        "'id'", "rows 3, 5 (2 in all)", "ids: ['a', 'b']",
    ),
    "label outside mapping": (
        ["a", "b", "c", "d"], ["t1", "t2", "t3", "t4"], ["yes", "maybe", "no", "unsure"],
        "'label'", "rows 2, 4 (2 in all)", "values seen: ['maybe', 'unsure']",
    ),
    "empty id": (
        ["a", "", "c"], ["t1", "t2", "t3"], ["yes", "no", "yes"],
        "'id'", "row 2 (1 in all)", "empty id",
    ),
}


@pytest.mark.parametrize("problem", ROW_PROBLEMS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_rows_error_names_file_field_and_rows(tmp_path, fmt, problem):
    ids, texts, labels, field, rows, extra = ROW_PROBLEMS[problem]
    message = load_error(source(write(note_frame(ids, texts, labels), tmp_path / f"notes.{fmt}")))
    assert f"field {field}" in message
    assert rows in message
    assert extra in message


def test_many_bad_rows_show_the_first_few_and_the_count(tmp_path):
    labels = ["maybe"] * 8 + ["yes", "no"]
    path = write(note_frame([f"id{i}" for i in range(10)], ["t"] * 10, labels), tmp_path / "notes.csv")
    message = load_error(source(path))
    assert "rows 1, 2, 3, 4, 5 and 3 more (8 in all)" in message


@pytest.mark.parametrize("fmt", ("jsonl", "parquet"))
def test_a_null_label_is_reported_on_its_row_only(tmp_path, fmt):
    # A null in an integer column makes the column float (1.0, 0.0): only the null is bad.
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [1, None, 0]})
    message = load_error(DatasetSource(write(frame, tmp_path / f"d.{fmt}")))
    assert "field 'label'" in message and "row 2 (1 in all)" in message


# --- drop_bad_rows -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_drop_bad_rows_drops_exactly_the_bad_rows_and_reports_them(tmp_path, fmt):
    ids = ["r1", "r2", "r3", "r4", "r5", "r1", "r7", "r8", "r9", "r10"]
    texts = ["t1", "t2", "", "t4", "   ", "t6", "t7", "t8", "t9", "t10"]
    labels = ["yes", "no", "yes", "No", "no", "yes", "YES", "maybe", "no", "yes"]
    path = write(note_frame(ids, texts, labels), tmp_path / f"notes.{fmt}")
    loaded = load_dataset(source(path, drop_bad_rows=True))
    keep = [0, 1, 3, 6, 8, 9]
    assert loaded.frame["id"].tolist() == [ids[i] for i in keep]
    assert loaded.frame["text"].tolist() == [texts[i] for i in keep]
    assert loaded.frame["label"].tolist() == [1, 0, 0, 1, 0, 1]
    reported = {d.problem.split(" [")[0]: (d.rows, d.ids) for d in loaded.dropped}
    assert reported == {
        "empty or whitespace-only text": ([3, 5], ["r3", "r5"]),
        "duplicate id": ([6], ["r1"]),
        "label outside the mapping": ([8], ["r8"]),
    }
    assert sum(len(d.rows) for d in loaded.dropped) == 4


def test_drop_bad_rows_on_a_clean_file_drops_nothing(tmp_path):
    path = write(note_frame(IDS, TEXTS, ["yes", "no", "no", "yes", "yes"]), tmp_path / "notes.csv")
    loaded = load_dataset(source(path, drop_bad_rows=True))
    assert loaded.dropped == []
    assert loaded.frame["id"].tolist() == IDS


# --- the config file ---------------------------------------------------------------------

def test_config_with_an_unknown_task(tmp_path):
    config = tmp_path / "datasets.yaml"
    config.write_text("tasks:\n  breast_cancer:\n    path: a.csv\n  brest_cancer:\n    path: b.csv\n")
    with pytest.raises(DataError, match=re.escape(str(config)) + r".*brest_cancer"):
        read_dataset_config(config)


def test_config_entry_with_an_unknown_field(tmp_path):
    with pytest.raises(DataError, match=r"where\.yaml: task 'breast_cancer'.*'colums'"):
        source_from_mapping("breast_cancer", {"path": "a.csv", "colums": {}}, tmp_path, "where.yaml")


def test_shipped_config_lists_every_task_and_each_file_loads():
    config = DATA / "datasets.yaml"
    entries = read_dataset_config(config)
    assert sorted(entries) == sorted(TASK_KEYS)
    for task, entry in entries.items():
        src = source_from_mapping(task, entry, config.parent, str(config))
        loaded = load_dataset(src)
        assert loaded.dropped == [], task
        assert len(loaded.frame) == 500, task
        assert set(loaded.frame["label"]) == {0, 1}, task


def test_notes_mapped_as_labels_or_ids_stay_out_of_the_error(tmp_path):
    """A column mapped by mistake puts notes where labels or ids belong: the error counts them, never quotes them."""
    notes = [f"Pt seen today for follow-up, note number {i}, plan unchanged" for i in range(6)]
    frame = pd.DataFrame({"note_id": ["a", "b", "c", "d", "e", "f"], "note_text": notes, "annotation": ["yes"] * 6})
    path = write(frame, tmp_path / "notes.csv")
    message = load_error(source(path, columns={"id": "note_id", "text": "note_text", "label": "note_text"}))
    assert "values seen: 6 distinct, not shown" in message and "is `columns` right?" in message
    frame["dup"] = notes[:3] * 2
    message = load_error(source(write(frame, path), columns={"id": "dup", "text": "note_text", "label": "annotation"}))
    assert "ids: 3 distinct, not shown" in message
    assert not any(note in message for note in notes)


# --- inputs other tools export -------------------------------------------------------------

HEADER_ONLY = {"csv": b"note_id,note_text,annotation\n", "tsv": b"note_id\tnote_text\tannotation\n"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_without_data_rows_is_an_error(tmp_path, fmt):
    path = tmp_path / f"notes.{fmt}"
    if fmt == "parquet":
        write(note_frame([], [], []), path)
    else:
        path.write_bytes(HEADER_ONLY.get(fmt, b"\n"))
    message = load_error(source(path))
    assert "no data rows" in message or "the file is empty" in message


@pytest.mark.parametrize("fmt", ("csv", "tsv"))
def test_an_empty_text_file_is_an_error(tmp_path, fmt):
    path = tmp_path / f"notes.{fmt}"
    path.write_bytes(b"")
    assert "the file is empty" in load_error(source(path))


@pytest.mark.parametrize(
    "lines, blamed",
    [
        # pandas takes a first row with one field too many as an index and blames every label
        (['a,"one",yes,extra', "b,two,no", "c,three,yes"], "line 2: 4 fields"),
        # a quoted line break before it: the physical line, not the record's number
        (["a,one,yes", 'b,"two\nlines\nof note",no', "c,three,yes,extra"], "line 6: 4 fields"),
        (["a,one,yes", "b,two", "c,three,yes"], "line 3: 2 fields"),
    ],
)
def test_a_line_with_the_wrong_number_of_fields_is_named_by_its_physical_line(tmp_path, lines, blamed):
    path = tmp_path / "notes.csv"
    path.write_text("\n".join(["note_id,note_text,annotation", *lines]) + "\n")
    message = load_error(source(path))
    assert "the header (line 1) has 3 fields" in message
    assert blamed in message and "(1 line in all)" in message


def test_row_errors_name_the_physical_lines_of_a_text_file(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('note_id,note_text,annotation\na,"two\nlines",yes\nb,ok,no\nc,bad,maybe\n')
    message = load_error(source(path))
    assert "field 'label'" in message and "row 3 (1 in all) on line 5" in message


def test_a_file_not_in_utf8_names_the_line_and_the_encoding_field(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes("note_id,note_text,annotation\na,plain,yes\nb,café — naïve,no\n".encode("cp1252"))
    message = load_error(source(path))
    assert "line 3" in message and "not utf-8 text" in message
    assert "`encoding`" in message and "byte 0xe9" in message
    frame = load_dataset(source(path, encoding="cp1252")).frame
    assert frame["text"].tolist() == ["plain", "café — naïve"]


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes("note_id,note_text,annotation\na,x,yes\n".encode("utf-8-sig"))
    assert load_dataset(source(path)).frame["id"].tolist() == ["a"]


def test_an_unknown_encoding_names_the_field(tmp_path):
    with pytest.raises(DataError, match=r"where\.yaml: task 'breast_cancer': `encoding`: unknown encoding 'utf-9'"):
        source_from_mapping("breast_cancer", {"path": "a.csv", "encoding": "utf-9"}, tmp_path, "where.yaml")


def test_decimal_and_boolean_labels_are_read_by_default(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("id,text,label\na,x,1.0\nb,y,0.0\nc,z,TRUE\nd,w,false\ne,v,1\n")
    assert load_dataset(DatasetSource(csv_path)).frame["label"].tolist() == [1, 0, 1, 0, 1]
    jsonl_path = tmp_path / "d.jsonl"
    jsonl_path.write_text('{"id": "a", "text": "x", "label": true}\n{"id": "b", "text": "y", "label": false}\n')
    assert load_dataset(DatasetSource(jsonl_path)).frame["label"].tolist() == [1, 0]
    parquet = write(pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": [False, True]}), tmp_path / "d.parquet")
    assert load_dataset(DatasetSource(parquet)).frame["label"].tolist() == [0, 1]


def test_a_decimal_label_that_is_not_integral_or_not_in_the_mapping_is_still_an_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,label\na,x,1.5\nb,y,0.0\n")
    assert "field 'label'" in load_error(DatasetSource(path)) and "row 1 (1 in all)" in load_error(DatasetSource(path))
    path.write_text("note_id,note_text,annotation\na,x,1.0\nb,y,no\n")
    message = load_error(source(path))  # a yes/no mapping does not take 1.0
    assert "field 'label'" in message and "row 1 (1 in all) on line 2" in message and "values seen: ['1.0']" in message


def test_a_list_in_a_jsonl_field_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x", "label": 1}\n{"id": ["b"], "text": {"t": 1}, "label": 0}\n')
    message = load_error(DatasetSource(path))
    assert "field 'id': a list or object, not a single value in row 2 (1 in all) on line 2" in message
    assert "field 'text': a list or object" in message


def test_a_repeated_mapped_column_is_an_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,text,label\na,x,y,1\n")
    assert "['text'] more than once" in load_error(DatasetSource(path))


def test_drop_bad_rows_that_would_drop_every_row_is_an_error(tmp_path):
    path = write(note_frame(["a", "b"], ["x", "y"], ["maybe", "unsure"]), tmp_path / "notes.csv")
    message = load_error(source(path, drop_bad_rows=True))
    assert "every row is bad" in message and "field 'label'" in message

"""Property-based tests of the dataset loader, with hypothesis: whatever bytes a CSV, TSV or
JSONL file holds, loading it gives a valid frame or raises DataError, never another exception.
Examples are derandomized (medassets_tests/conftest.py): the same ones on every run."""

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from medassets.core.datasets import DataError, DatasetSource, load_dataset, source_from_mapping

TEXT_FORMATS = ("csv", "tsv", "jsonl")
ENCODINGS = ("utf-8", "cp1252", "latin-1", "utf-16")
DELIMITER = {"csv": ",", "tsv": "\t"}

# Cells that trip parsers: delimiters, quotes, line breaks, NUL, a BOM, numbers, booleans.
TRICKY = st.sampled_from(
    ["", " ", ",", "\t", '"', '""', "'", "\n", "\r\n", "\r", "\x00", "\ufeff", "1", "0", "1.0", "0.0", "-0.0", "true", "False", "nan", "yes", "é", "NULL", "\\"]
)
CELLS = st.one_of(TRICKY, st.text(max_size=12), st.lists(TRICKY, max_size=4).map("".join))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def mostly(likely, other=CELLS):
    """`likely` four times in five, else `other`."""
    return st.sampled_from([likely] * 4 + [other]).flatmap(lambda strategy: strategy)


FIELDS = {
    "id": mostly(st.uuids().map(str), st.text(min_size=1, max_size=6) | CELLS),
    "text": mostly(st.text(min_size=1, max_size=20)),
    "label": mostly(st.sampled_from(["1", "0", "1.0", "0.0", " 1 ", "true", "FALSE", "2", "maybe", ""])),
}


def needs_quotes(cell: str, delimiter: str) -> bool:
    return any(char in cell for char in (delimiter, '"', "\n", "\r")) or cell != cell.strip()


@st.composite
def delimited_files(draw, fmt: str) -> tuple[bytes, str]:
    """(content, encoding): a header that maps (or nearly maps) id, text, label, then rows of
    tricky cells, some quoted, some with a field too many or too few, in some encoding."""
    delimiter = DELIMITER[fmt]
    headers = [st.permutations(["id", "text", "label"])] * 3 + [st.lists(st.sampled_from(["id", "text", "label", "x", ""]), max_size=5)]
    header = draw(st.sampled_from(headers).flatmap(lambda strategy: strategy))
    quote_as_needed = draw(st.integers(0, 9)) < 8  # as a CSV writer does; else quotes at random
    lines = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 5))):
        cells = [draw(FIELDS.get(name, CELLS)) for name in header]
        cells = draw(st.sampled_from([cells] * 18 + [cells[:-1], [*cells, draw(CELLS)]]))
        quoted = [
            '"' + c.replace('"', '""') + '"' if (needs_quotes(c, delimiter) if quote_as_needed else draw(st.booleans())) else c
            for c in cells
        ]
        lines.append(delimiter.join(quoted))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    read_as = draw(st.sampled_from([encoding.replace("-sig", "")] * 4 + list(ENCODINGS)))
    return newline.join(lines).encode(encoding, errors="replace"), read_as


@st.composite
def jsonl_files(draw) -> bytes:
    """Lines of JSON: objects with id, text, label and other keys holding likely or any JSON
    values, and some lines that are not objects."""
    likely = {
        "id": st.text(min_size=1, max_size=6) | st.integers(),
        "text": st.text(min_size=1, max_size=20),
        "label": st.sampled_from([0, 1, 0.0, 1.0, True, False, "1", "yes", 2, None]),
        "other": JSON_VALUES,
    }
    objects = st.fixed_dictionaries({k: likely[k] for k in ("id", "text", "label")}, optional={"other": JSON_VALUES})
    anything = st.dictionaries(st.sampled_from(list(likely)), JSON_VALUES, max_size=4)
    line = st.sampled_from([objects.map(json.dumps)] * 6 + [anything.map(json.dumps), JSON_VALUES.map(json.dumps), st.text(max_size=10)])
    lines = draw(st.lists(line.flatmap(lambda strategy: strategy), max_size=6))
    return "\n".join(lines).encode("utf-8", errors="replace")


def load_or_data_error(content: bytes, fmt: str, encoding: str, drop_bad_rows: bool) -> None:
    """Load `content` as a file of `fmt`: a valid frame, or DataError; any other exception fails."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        path.write_bytes(content)
        try:
            loaded = load_dataset(DatasetSource(path, encoding=encoding, drop_bad_rows=drop_bad_rows))
        except DataError as exc:
            assert str(path) in str(exc)
            event("DataError")
            return
    event("loaded")
    frame = loaded.frame
    assert list(frame.columns) == ["id", "text", "label"] and len(frame) > 0
    assert str(frame["label"].dtype) == "int64" and set(frame["label"]) <= {0, 1}
    assert all(isinstance(v, str) and v != "" for v in frame["id"]) and frame["id"].is_unique
    assert all(isinstance(v, str) and v.strip() != "" for v in frame["text"])
    assert drop_bad_rows or loaded.dropped == []


@pytest.mark.slow  # 300 examples: over 5 s on 2 cores
@settings(max_examples=300)
@given(fmt=st.sampled_from(TEXT_FORMATS), content=st.binary(max_size=400), encoding=st.sampled_from(ENCODINGS), drop=st.booleans())
def test_random_bytes_load_or_raise_data_error(fmt, content, encoding, drop):
    load_or_data_error(content, fmt, encoding, drop)


@pytest.mark.slow  # 300 examples: over 5 s on 2 cores
@settings(max_examples=300)
@given(fmt=st.sampled_from(("csv", "tsv")), data=st.data(), drop=st.booleans())
def test_delimited_files_of_tricky_cells_load_or_raise_data_error(fmt, data, drop):
    content, encoding = data.draw(delimited_files(fmt))
    load_or_data_error(content, fmt, encoding, drop)


@settings(max_examples=200)
@given(content=jsonl_files(), drop=st.booleans())
@example(content=b'{"id": "a", "text": ' + b"[" * 100_000 + b"}", drop=False)  # json.loads recurses
def test_jsonl_files_of_any_json_load_or_raise_data_error(content, drop):
    load_or_data_error(content, "jsonl", "utf-8", drop)


@settings(max_examples=150)
@given(data=st.data(), fmt=st.sampled_from(TEXT_FORMATS))
def test_a_valid_file_with_bytes_flipped_loads_or_raises_data_error(data, fmt):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ['say "hi", ok', "two\nlines", "é ✓"], "label": [1, 0, 1]})
    if fmt == "jsonl":
        content = frame.to_json(orient="records", lines=True, force_ascii=False).encode()
    else:
        content = frame.to_csv(index=False, sep=DELIMITER[fmt]).encode()
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(content) - 1), st.binary(max_size=3)), max_size=4))
    for position, replacement in edits:
        content = content[:position] + replacement + content[position + 1 :]
    load_or_data_error(content, fmt, "utf-8", data.draw(st.booleans()))


# Valid datasets, in every supported format and encoding: the loader must give them back as
# written. Texts hold delimiters, quotes and line breaks; ids are unique and kept verbatim.
def encodable(encoding: str):
    """Characters the encoding can write (all of them for the UTF encodings)."""
    if encoding.startswith("utf"):
        return st.characters(exclude_categories=["Cs"])
    return st.sampled_from([chr(code) for code in range(1, 0x3000) if chr(code).encode(encoding, errors="ignore")])


ALPHABETS = {encoding: encodable(encoding) for encoding in ENCODINGS}


@st.composite
def valid_frames(draw, alphabet) -> pd.DataFrame:
    tricky = st.sampled_from([",", "\t", '"', "'", "\n", "\r\n", "\r", "\x00", " ", "é", "\\"])
    text = st.lists(alphabet | tricky, min_size=1, max_size=20).map("".join).filter(str.strip)
    ids = st.lists(alphabet | tricky, min_size=1, max_size=8).map("".join).map(str.strip).filter(bool)
    rows = draw(st.integers(1, 6))
    return pd.DataFrame({
        "id": draw(st.lists(ids, min_size=rows, max_size=rows, unique=True)),
        "text": draw(st.lists(text, min_size=rows, max_size=rows)),
        "label": draw(st.lists(st.sampled_from([0, 1]), min_size=rows, max_size=rows)),
    })


def written(frame: pd.DataFrame, fmt: str, encoding: str, newline: str) -> bytes:
    if fmt == "parquet":
        return frame.to_parquet(index=False)
    if fmt == "jsonl":
        lines = (json.dumps(record, ensure_ascii=False) for record in frame.to_dict(orient="records"))
        return newline.join(lines).encode(encoding)
    # Quoted as RFC 4180 asks (Python's csv writer leaves a lone \r unquoted unless it ends lines).
    delimiter = DELIMITER[fmt]
    rows = [list(frame.columns), *([str(cell) for cell in row] for row in frame.itertuples(index=False))]
    quoted = (('"' + cell.replace('"', '""') + '"' if needs_quotes(cell, delimiter) else cell for cell in row) for row in rows)
    return newline.join(delimiter.join(row) for row in quoted).encode(encoding)


@settings(max_examples=200)
@given(data=st.data(), fmt=st.sampled_from((*TEXT_FORMATS, "parquet")), encoding=st.sampled_from(ENCODINGS), newline=st.sampled_from(["\n", "\r\n"]))
def test_a_valid_frame_in_any_format_and_encoding_loads_back_as_written(data, fmt, encoding, newline):
    frame = data.draw(valid_frames(ALPHABETS[encoding]))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"data.{fmt}").write_bytes(written(frame, fmt, encoding, newline))
        entry = {"path": f"data.{fmt}"} | ({} if fmt == "parquet" else {"encoding": encoding})
        loaded = load_dataset(source_from_mapping("breast_cancer", entry, Path(folder), "datasets.yaml"))
    assert loaded.dropped == []
    assert loaded.frame["id"].tolist() == frame["id"].tolist()
    assert loaded.frame["text"].tolist() == frame["text"].tolist()
    assert loaded.frame["label"].tolist() == frame["label"].tolist()

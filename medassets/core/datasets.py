"""Loading a task's dataset from the user's file into the columns `id`, `text`, `label`.

Bad input is an error naming the file, the field and the rows (1-based data rows, header
not counted; in a text file also its physical lines). With `drop_bad_rows` the bad rows are
dropped instead, and reported back. A file with no data rows is an error.

CSV and TSV are read with Python's `csv` module, strictly, so that a line with the wrong
number of fields is named by its own line (pandas would shift a row with one field too many
into its index and blame every row's label); JSONL one line at a time, for the same reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from medassets.tasks import TASKS

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
COLUMNS = ("id", "text", "label")
# Labels written as 1.0/0.0 (a spreadsheet's export) are read as 1/0 whatever the mapping, so
# the default also accepts the booleans true/false (JSON, Parquet, a TRUE/FALSE column).
DEFAULT_LABELS = {"1": 1, "0": 0, "true": 1, "false": 0}
DEFAULT_ENCODING = "utf-8"
_SHOWN_ROWS = 5
_SHOWN_VALUE_CHARS = 40  # a longer label or id value is not shown: it may be a note


class DataError(ValueError):
    """A dataset that cannot be used as given."""


@dataclass(frozen=True)
class DatasetSource:
    path: Path
    format: str | None = None  # inferred from the extension when None
    columns: dict[str, str] = field(default_factory=lambda: {c: c for c in COLUMNS})
    labels: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    drop_bad_rows: bool = False
    preview: bool = False  # show a few rows in metadata (never on by default for user data)
    encoding: str = DEFAULT_ENCODING  # of a CSV, TSV or JSONL file; a UTF-8 byte-order mark is skipped

    def resolved_format(self) -> str:
        fmt = self.format or _EXTENSIONS.get(self.path.suffix.lower())
        if fmt not in FORMATS:
            raise DataError(
                f"{self.path}: unknown format {fmt or self.path.suffix!r}; "
                f"set `format` to one of {', '.join(FORMATS)}"
            )
        return fmt


@dataclass(frozen=True)
class DroppedRows:
    """Rows left out at the user's request: what was wrong with them."""

    problem: str
    rows: list[int]
    ids: list[str]


@dataclass(frozen=True)
class LoadedDataset:
    frame: pd.DataFrame  # id (str), text (str), label (int 0/1)
    dropped: list[DroppedRows]


# YAML 1.1 (PyYAML) reads an unquoted yes/no/on/off/true/false key as a boolean, so
# `labels: {yes: 1, no: 0}` arrives as {True: 1, False: 0}: accept each spelling it may have had.
_YAML_BOOLEAN_NAMES = {True: ("true", "yes", "on"), False: ("false", "no", "off")}


def _label_names(key) -> tuple[str, ...]:
    if isinstance(key, bool):
        return _YAML_BOOLEAN_NAMES[key]
    return (str(key).strip().lower(),)


def source_from_mapping(task: str, entry: dict, base: Path, where: str) -> DatasetSource:
    """A task's source from its config entry; relative paths are read from `base`."""
    known = {"path", "format", "columns", "labels", "drop_bad_rows", "preview", "encoding"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise DataError(f"{where}: task {task!r}: unknown field(s) {unknown}; known: {sorted(known)}")
    if not entry.get("path"):
        raise DataError(f"{where}: task {task!r}: `path` is required")
    columns = {c: c for c in COLUMNS} | dict(entry.get("columns") or {})
    if set(columns) != set(COLUMNS):
        raise DataError(f"{where}: task {task!r}: `columns` maps only {list(COLUMNS)}")
    labels = {
        name: v for k, v in (entry.get("labels") or DEFAULT_LABELS).items() for name in _label_names(k)
    }
    if set(labels.values()) != {0, 1}:
        raise DataError(f"{where}: task {task!r}: `labels` must map values to both 1 and 0")
    encoding = entry.get("encoding") or DEFAULT_ENCODING
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise DataError(f"{where}: task {task!r}: `encoding`: unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
    path = Path(entry["path"])
    return DatasetSource(
        path=path if path.is_absolute() else base / path,
        format=entry.get("format"),
        columns=columns,
        labels=labels,
        drop_bad_rows=bool(entry.get("drop_bad_rows", False)),
        preview=bool(entry.get("preview", False)),
        encoding=encoding,
    )


def read_dataset_config(config_path: Path) -> dict[str, dict]:
    """The entries of the dataset config file: `tasks: {task_key: {path, format, ...}}`."""
    try:
        document = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{config_path}: cannot read the dataset config: {exc}") from exc
    entries = document.get("tasks") or {}
    unknown = sorted(set(entries) - set(TASKS))
    if unknown:
        raise DataError(f"{config_path}: unknown task(s) {unknown}; known: {sorted(TASKS)}")
    return {task: dict(entry or {}) for task, entry in entries.items()}


@dataclass(frozen=True)
class _Table:
    frame: pd.DataFrame  # the file's columns, as read
    lines: list[int] | None  # each row's first physical line (text formats)


def _decode(source: DatasetSource, data: bytes) -> str:
    encoding = "utf-8-sig" if codecs.lookup(source.encoding).name == "utf-8" else source.encoding
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{source.path}: line {line}: not {source.encoding} text (byte 0x{data[exc.start]:02x}); "
            "if the file is in another encoding, set `encoding` in the task's dataset entry (datasets.yaml or "
            "raw_dataset's run config), e.g. encoding: cp1252"
        ) from None


def _read_delimited(source: DatasetSource, text: str, delimiter: str) -> _Table:
    # A long clinical note can exceed csv's default field limit (128 KiB); pandas has none.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header, header_line, rows, lines, wrong = None, 0, [], [], []
    line = 0
    try:
        for record in reader:
            first, line = line + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if header is None:
                header, header_line = record, first
            elif len(record) != len(header):
                wrong.append(f"line {first}: {len(record)} field{'s' if len(record) != 1 else ''}")
            else:
                rows.append(record)
                lines.append(first)
    except csv.Error as exc:
        raise DataError(f"{source.path}: line {reader.line_num}: cannot read as {source.resolved_format()}: {exc}") from None
    if header is None:
        raise DataError(f"{source.path}: the file is empty; expected a header line and data rows")
    if wrong:
        raise DataError(
            f"{source.path}: the header (line {header_line}) has {len(header)} fields, but "
            + ", ".join(wrong[:_SHOWN_ROWS]) + (f" and {len(wrong) - _SHOWN_ROWS} more" if len(wrong) > _SHOWN_ROWS else "")
            + f" ({len(wrong)} line{'s' if len(wrong) > 1 else ''} in all); quote fields that hold the delimiter"
        )
    return _Table(pd.DataFrame(rows, columns=header, dtype=object), lines)


def _read_jsonl(source: DatasetSource, text: str) -> _Table:
    records, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise DataError(f"{source.path}: line {number}: cannot read as jsonl, not a JSON object: {exc}") from None
        if not isinstance(record, dict):
            raise DataError(f"{source.path}: line {number}: cannot read as jsonl, a {type(record).__name__} is not a JSON object")
        records.append(record)
        lines.append(number)
    if not records:
        raise DataError(f"{source.path}: the file is empty; expected one JSON object per line")
    return _Table(pd.DataFrame.from_records(records), lines)


def _read(source: DatasetSource) -> _Table:
    path, fmt = source.path, source.resolved_format()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if fmt == "parquet":
        try:
            return _Table(pd.read_parquet(path), None)
        except Exception as exc:  # pyarrow raises many kinds; all mean "unreadable"
            raise DataError(f"{path}: cannot read as {fmt}: {exc}") from exc
    text = _decode(source, path.read_bytes())
    return _read_jsonl(source, text) if fmt == "jsonl" else _read_delimited(source, text, "," if fmt == "csv" else "\t")


def _rows_text(rows: list[int], lines: list[int] | None) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    more = f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
    text = f"row{'s' if len(rows) > 1 else ''} {shown}{more} ({len(rows)} in all)"
    if lines is not None:  # a text file: where an editor shows them (a quoted field may span lines)
        text += f" on line{'s' if len(rows) > 1 else ''} {', '.join(str(lines[r - 1]) for r in rows[:_SHOWN_ROWS])}"
    return text


def _missing(value) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and pd.isna(value))


def _cell_text(value) -> str:
    """A cell as text; an integral float is its integer (JSONL and Parquet read an integer
    column holding a null as float, so a label 1 arrives as 1.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _shown_values(what: str, values: pd.Series) -> str:
    """A few of the distinct values, unless one is long enough to be free text: a column mapped
    by mistake (the notes as labels) must not put notes into an error message."""
    distinct = sorted({str(v) for v in values})
    if any(len(v) > _SHOWN_VALUE_CHARS for v in distinct):
        return (f"{what}: {len(distinct)} distinct, not shown as some are longer than {_SHOWN_VALUE_CHARS} "
                "characters, like free text (is `columns` right?)")
    return f"{what}: {distinct[:_SHOWN_ROWS]}"


_INTEGRAL_DECIMAL = re.compile(r"[+-]?\d+\.0*")


def _label_key(value) -> str:
    """A label cell as the mapping's keys are written: lower case, 1.0 as 1, a boolean as true/false."""
    text = _cell_text(value).lower()
    return text.split(".")[0].lstrip("+") if _INTEGRAL_DECIMAL.fullmatch(text) else text


def load_dataset(source: DatasetSource) -> LoadedDataset:
    """Read, map and validate one dataset. Raises DataError unless `drop_bad_rows` is set."""
    table = _read(source)
    raw = table.frame
    missing = [f"{field!r} (column {col!r})" for field, col in source.columns.items() if col not in raw.columns]
    if missing:
        raise DataError(
            f"{source.path}: missing {', '.join(missing)}; the file has columns {list(raw.columns)}"
        )
    repeated = sorted({col for col in source.columns.values() if list(raw.columns).count(col) > 1})
    if repeated:
        raise DataError(f"{source.path}: the header names column(s) {repeated} more than once")
    if raw.empty:
        raise DataError(f"{source.path}: no data rows, only the header; expected one row per item")
    frame = pd.DataFrame(
        {field: raw[col] for field, col in source.columns.items()}
    ).reset_index(drop=True)
    row_numbers = pd.Series(range(1, len(frame) + 1))
    single = {name: frame[name].map(pd.api.types.is_scalar) for name in COLUMNS}
    ids = frame["id"].map(lambda v: "" if not pd.api.types.is_scalar(v) or _missing(v) else _cell_text(v))
    texts = frame["text"].map(lambda v: "" if not pd.api.types.is_scalar(v) or _missing(v) else str(v))
    labels = frame["label"].map(lambda v: source.labels.get(_label_key(v)) if pd.api.types.is_scalar(v) else None)

    problems = [
        *((name, "a list or object, not a single value", ~single[name]) for name in COLUMNS),
        ("id", "empty id", (ids == "") & single["id"]),
        ("text", "empty or whitespace-only text", (texts.str.strip() == "") & single["text"]),
        ("label", f"label outside the mapping {sorted(source.labels)}", labels.isna() & single["label"]),
        ("id", "duplicate id", ids.duplicated(keep="first") & (ids != "")),
    ]
    bad = pd.Series(False, index=frame.index)
    dropped, messages = [], []
    for field_name, problem, mask in problems:
        if not mask.any():
            continue
        rows = row_numbers[mask].tolist()
        bad |= mask
        dropped.append(DroppedRows(problem, rows, ids[mask].tolist()))
        example = ""
        if field_name == "label" and problem.startswith("label"):
            example = "; " + _shown_values("values seen", frame["label"][mask])
        elif field_name == "id" and problem == "duplicate id":
            example = "; " + _shown_values("ids", ids[mask])
        messages.append(f"field {field_name!r}: {problem} in {_rows_text(rows, table.lines)}{example}")
    if messages and not source.drop_bad_rows:
        raise DataError(
            f"{source.path}: " + "; ".join(messages)
            + " (set drop_bad_rows to drop them, with the count and ids recorded)"
        )
    if bad.all():
        raise DataError(f"{source.path}: every row is bad, nothing is left after drop_bad_rows: " + "; ".join(messages))
    clean = pd.DataFrame({"id": ids, "text": texts, "label": labels})[~bad]
    clean = clean.astype({"id": "string", "text": "string", "label": "int64"})
    return LoadedDataset(clean.reset_index(drop=True), dropped)

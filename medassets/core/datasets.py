"""Loading a task's dataset from the user's file into the columns `id`, `text`, `label`.

Bad input is an error naming the file, the field and the rows (1-based data rows, header
not counted). With `drop_bad_rows` the bad rows are dropped instead, and reported back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from medassets.tasks import TASKS

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
COLUMNS = ("id", "text", "label")
DEFAULT_LABELS = {"1": 1, "0": 0}
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
    known = {"path", "format", "columns", "labels", "drop_bad_rows", "preview"}
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
    path = Path(entry["path"])
    return DatasetSource(
        path=path if path.is_absolute() else base / path,
        format=entry.get("format"),
        columns=columns,
        labels=labels,
        drop_bad_rows=bool(entry.get("drop_bad_rows", False)),
        preview=bool(entry.get("preview", False)),
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


def _read(source: DatasetSource) -> pd.DataFrame:
    path, fmt = source.path, source.resolved_format()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(
                path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False
            )
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except Exception as exc:  # the parsers raise many kinds; all mean "unreadable"
        raise DataError(f"{path}: cannot read as {fmt}: {exc}") from exc


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    more = f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more} ({len(rows)} in all)"


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


def load_dataset(source: DatasetSource) -> LoadedDataset:
    """Read, map and validate one dataset. Raises DataError unless `drop_bad_rows` is set."""
    raw = _read(source)
    missing = [f"{field!r} (column {col!r})" for field, col in source.columns.items() if col not in raw.columns]
    if missing:
        raise DataError(
            f"{source.path}: missing {', '.join(missing)}; the file has columns {list(raw.columns)}"
        )
    frame = pd.DataFrame(
        {field: raw[col] for field, col in source.columns.items()}
    ).reset_index(drop=True)
    row_numbers = pd.Series(range(1, len(frame) + 1))
    ids = frame["id"].map(lambda v: "" if v is None or pd.isna(v) else _cell_text(v))
    texts = frame["text"].map(lambda v: "" if v is None or pd.isna(v) else str(v))
    labels = frame["label"].map(lambda v: source.labels.get(_cell_text(v).lower()))

    problems = [
        ("id", "empty id", ids == ""),
        ("text", "empty or whitespace-only text", texts.str.strip() == ""),
        ("label", f"label outside the mapping {sorted(source.labels)}", labels.isna()),
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
        if field_name == "label":
            example = "; " + _shown_values("values seen", frame["label"][mask])
        elif field_name == "id" and problem == "duplicate id":
            example = "; " + _shown_values("ids", ids[mask])
        messages.append(f"field {field_name!r}: {problem} in {_rows_text(rows)}{example}")
    if messages and not source.drop_bad_rows:
        raise DataError(
            f"{source.path}: " + "; ".join(messages)
            + " (set drop_bad_rows to drop them, with the count and ids recorded)"
        )
    clean = pd.DataFrame({"id": ids, "text": texts, "label": labels})[~bad]
    clean = clean.astype({"id": "string", "text": "string", "label": "int64"})
    return LoadedDataset(clean.reset_index(drop=True), dropped)

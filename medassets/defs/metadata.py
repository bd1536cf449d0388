"""Metadata that every DataFrame asset records: rows, class balance, schema, and an opt-in preview."""

import hashlib
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

import pandas as pd
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

PREVIEW_ROWS = 5

# Asset tags: the task domains an asset's partitions cover (each partition's own domain is
# in its materialization metadata).
DOMAIN_TAGS = {"social_media": "", "clinical_notes": ""}


def table_schema(frame: pd.DataFrame) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.dtypes.items()])


def frame_metadata(frame: pd.DataFrame, *, preview: bool = False) -> dict[str, Any]:
    """Row count, column schema, class balance (of the rows that have a label) and, only when asked, a preview."""
    metadata: dict[str, Any] = {
        "dagster/row_count": len(frame),
        "dagster/column_schema": table_schema(frame),
    }
    labels = frame["label"].dropna() if "label" in frame else frame.iloc[:0]
    if len(labels):
        positives = int((labels == 1).sum())
        metadata |= {
            "positives": positives,
            "negatives": int((labels == 0).sum()),
            "positive_rate": round(positives / len(labels), 4),
        }
    if preview:
        metadata["preview"] = MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False))
    return metadata


def code_version(*parts: ModuleType | str) -> str:
    """Changes exactly when what an asset computes with changes: the source of the modules
    holding its logic, and the versions of the data tables it reads (given as strings, e.g.
    `tasks_version(...)` of the task fields, `templates_version()` of the prompt wordings)."""
    source = "".join(_source(part) if isinstance(part, ModuleType) else part for part in parts)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _source(module: ModuleType) -> str:
    """A module's source; a package's, that of every module in it, in name order."""
    if not hasattr(module, "__path__"):
        return inspect.getsource(module)
    names = sorted(info.name for info in pkgutil.iter_modules(module.__path__, f"{module.__name__}."))
    return inspect.getsource(module) + "".join(_source(importlib.import_module(name)) for name in names)


def column_lineage(lineage: dict[str, dict[str, list[str]]]) -> TableColumnLineage:
    """{column: {upstream asset: [its columns]}} as Dagster column lineage."""
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(AssetKey(asset), name) for asset, names in upstream.items() for name in names]
            for column, upstream in lineage.items()
        }
    )


def latest_metadata(instance: DagsterInstance, asset: str, partition: str) -> dict[str, Any]:
    """The metadata of a partition's latest materialization, as plain values."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}

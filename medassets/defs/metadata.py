"""Metadata that every DataFrame asset records: rows, class balance, schema, and an opt-in preview."""


import hashlib
import inspect
from types import ModuleType
from typing import Any

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

PREVIEW_ROWS = 5


def table_schema(frame: pd.DataFrame) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.dtypes.items()])


def frame_metadata(frame: pd.DataFrame, *, preview: bool = False) -> dict[str, Any]:
    """Row count, column schema, class balance (when there is a label) and, only when asked, a preview."""
    metadata: dict[str, Any] = {
        "dagster/row_count": len(frame),
        "dagster/column_schema": table_schema(frame),
    }
    if "label" in frame and len(frame):
        positives = int((frame["label"] == 1).sum())
        metadata |= {
            "positives": positives,
            "negatives": int((frame["label"] == 0).sum()),
            "positive_rate": round(positives / len(frame), 4),
        }
    if preview:
        metadata["preview"] = MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False))
    return metadata


def code_version(*modules: ModuleType) -> str:
    """Changes exactly when the source of the modules holding an asset's logic changes."""
    source = "".join(inspect.getsource(module) for module in modules)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]

# Asset tags: the task domains an asset's partitions cover (each partition's own domain is
# in its materialization metadata).
DOMAIN_TAGS = {"social_media": "", "clinical_notes": ""}

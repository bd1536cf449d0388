"""MkDocs hook: `<!-- fields: module.Class -->` in a page becomes the table of that pydantic
model's fields (name, type, default, description), read from the model itself, so the
reference says what the code validates."""

import html
import importlib
import re

from pydantic_core import PydanticUndefined

MARKER = re.compile(r"<!-- fields: ([\w.]+) -->")


def _type(annotation) -> str:
    name = getattr(annotation, "__name__", None)
    text = name if name and not getattr(annotation, "__args__", None) else str(annotation)
    return re.sub(r"\b(typing|medassets(\.\w+)*)\.", "", text).replace("|", "\\|")


def _default(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`" if field.default_factory in (dict, list, tuple) else "(its own defaults)"
    return "required" if field.default is PydanticUndefined else f"`{field.default!r}`"


def _table(path: str) -> str:
    module, name = path.rsplit(".", 1)
    model = getattr(importlib.import_module(module), name)
    rows = ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    for field_name, field in model.model_fields.items():
        description = html.escape(field.description or "", quote=False).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{field_name}` | `{_type(field.annotation)}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def on_page_markdown(markdown, **kwargs):
    return MARKER.sub(lambda match: _table(match.group(1)), markdown)

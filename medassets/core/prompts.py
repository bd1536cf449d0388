"""Rendering the test rows as prompts with the task's Table 2 template."""

from __future__ import annotations

import hashlib

import pandas as pd

from medassets.tasks import TASKS


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def template_version(task: str) -> str:
    """Changes exactly when the task's prompt text changes."""
    spec = TASKS[task]
    return text_hash(f"{spec.template}\n{spec.task_phrase}")


def render_prompts(task: str, test_rows: pd.DataFrame) -> pd.DataFrame:
    """id, label, prompt and prompt_hash for each test row."""
    spec = TASKS[task]
    prompts = test_rows["text"].map(spec.render)
    return pd.DataFrame(
        {
            "id": test_rows["id"].to_numpy(),
            "label": test_rows["label"].to_numpy(),
            "prompt": prompts.to_numpy(),
            "prompt_hash": prompts.map(text_hash).to_numpy(),
        }
    ).astype({"id": "string", "prompt": "string", "prompt_hash": "string"})

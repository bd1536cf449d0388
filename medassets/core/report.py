"""The comparison as one self-contained HTML file: no network, no external CSS or script,
images inline. Ids and counts only: no text of any item."""

from __future__ import annotations

import base64
import html
from datetime import datetime, UTC

import pandas as pd

from medassets.core.error_analysis import item_table, outcome_counts
from medassets.tasks import TASK_KEYS, TASKS

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e3e3e3; text-align: left; white-space: nowrap; }
th { background: #f3f5f7; } p.note { color: #555; font-size: 0.85rem; max-width: 60rem; }
img { max-width: 100%; } div.scroll { overflow-x: auto; }
"""


def confusion_table(labels: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: the four cells of the valid answers and the invalid ones by gold label."""
    rows = []
    for (task, model), part in labels.groupby(["task", "model"]):
        gold, label = part["gold"], part["label"]
        rows.append({
            "Task": TASKS[task].title, "Model": model,
            "TP": int(((gold == 1) & (label == 1)).sum()), "FN": int(((gold == 1) & (label == 0)).sum()),
            "FP": int(((gold == 0) & (label == 1)).sum()), "TN": int(((gold == 0) & (label == 0)).sum()),
            "Invalid, gold 1": int(((gold == 1) & (label == -1)).sum()),
            "Invalid, gold 0": int(((gold == 0) & (label == -1)).sum()),
            "_order": TASK_KEYS.index(task),
        })
    return pd.DataFrame(rows).sort_values(["_order", "Model"]).drop(columns="_order") if rows else pd.DataFrame()


def invalid_reasons(labels: pd.DataFrame) -> pd.DataFrame:
    """Invalid answers per model and reason, over every task."""
    invalid = labels[labels["label"] == -1]
    if invalid.empty:
        return pd.DataFrame({"Model": sorted(labels["model"].unique()), "Invalid answers": 0})
    table = invalid.pivot_table(index="model", columns="invalid_reason", values="id", aggfunc="count", fill_value=0)
    table = table.reindex(sorted(labels["model"].unique()), fill_value=0)
    table.insert(0, "Invalid answers", table.sum(axis=1))
    return table.rename_axis(index="Model", columns=None).reset_index()


def error_outcomes(labels: pd.DataFrame) -> pd.DataFrame:
    """Per task: items all models get right, none does, only one model gets wrong or right."""
    rows = []
    for task in [task for task in TASK_KEYS if task in set(labels["task"])]:
        of_task = labels[labels["task"] == task]
        models = sorted(of_task["model"].unique())
        rows.append({"Task": TASKS[task].title, **outcome_counts(item_table(of_task), models)})
    return pd.DataFrame(rows)


def _table(frame: pd.DataFrame, table_id: str) -> str:
    if frame.empty:
        return "<p class='note'>Nothing to show.</p>"
    table = frame.to_html(index=False, escape=True, border=0, table_id=table_id, na_rep="")
    return f"<div class='scroll'>{table}</div>"


def _score_sections(auroc_differences, score_curves, headings) -> list[tuple[str, str, str, str]]:
    sections = []
    if auroc_differences is not None:
        sections.append((
            "auroc-differences", "Paired AUROC differences and DeLong's test",
            f"{html.escape(headings['auroc_differences'])}. AUROC(a) - AUROC(b) on the items both models score.",
            _table(auroc_differences, "auroc-differences"),
        ))
    if score_curves is not None:
        images = "".join(
            f"<h3>{html.escape(TASKS[task].title)}</h3><img alt='ROC, precision-recall and reliability curves: "
            f"{html.escape(TASKS[task].title)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
            for task, png in sorted(score_curves.items(), key=lambda item: TASK_KEYS.index(item[0]))
        )
        sections.append((
            "score-curves", "ROC, precision-recall and reliability curves", f"{html.escape(headings['score_curves'])}.",
            images or "<p class='note'>Nothing to show.</p>",
        ))
    return sections


def render_report(
    *, table3: pd.DataFrame, differences: pd.DataFrame, labels: pd.DataFrame, sensitivity: pd.DataFrame,
    forest_png: bytes, provenance: dict[str, pd.DataFrame], headings: dict[str, str],
    auroc_differences: pd.DataFrame | None = None, score_curves: dict[str, bytes] | None = None,
) -> str:
    """The report's HTML. `differences` is `comparison.differences_table`'s display form;
    `labels` has columns task, model, id, gold, label and invalid_reason; `headings` are
    `comparison.headings`, stating the settings each table was computed with.

    For models that give scores: `auroc_differences` is `comparison.auroc_differences_table`'s
    display form and `score_curves` maps a task to `comparison.score_curves_plot`'s PNG; each,
    when given, adds its section after the paired differences."""
    image = base64.b64encode(forest_png).decode("ascii")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("table3", "Table 3", f"{html.escape(headings['table3'])}.",
         _table(table3, "table3")),
        ("forest-plot", "F1 by task and model", f"{html.escape(headings['forest_plot'])}.",
         f"<img alt='F1 forest plot' src='data:image/png;base64,{image}'>"),
        ("differences", "Paired differences and McNemar's test",
         f"{html.escape(headings['f1_differences'])}. F1(a) - F1(b); McNemar's test is on the items only one "
         "model gets right.", _table(differences, "differences")),
        *_score_sections(auroc_differences, score_curves, headings),
        ("confusion", "Confusion matrices", "", _table(confusion_table(labels), "confusion")),
        ("invalid", "Invalid answers by reason", "", _table(invalid_reasons(labels), "invalid")),
        ("sensitivity", "Prompt sensitivity",
         "F1 of each registry entry that shares its weights with another, and the spread (largest minus smallest). "
         "Constrained decoding is an ablation, not the paper's method.", _table(sensitivity, "sensitivity")),
        ("errors", "Error analysis", "Test items by which models get them right (per-item tables: the error_analysis asset).",
         _table(error_outcomes(labels), "errors")),
    ]
    sections += [
        (f"provenance-{name}", f"Provenance: {name}", "", _table(frame, f"provenance-{name}")) for name, frame in provenance.items()
    ]
    body = "\n".join(
        f"<section id='{anchor}'><h2>{html.escape(title)}</h2>"
        + (f"<p class='note'>{note}</p>" if note else "") + content + "</section>"
        for anchor, title, note, content in sections
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>medassets comparison</title><style>{_STYLE}</style></head><body>"
        f"<h1>medassets: comparison of {labels['model'].nunique()} models on {labels['task'].nunique()} tasks</h1>"
        f"<p class='note'>Generated {generated}. Every number below comes from the assets named in the provenance "
        f"tables.</p>{body}</body></html>"
    )

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


# Table 3's metrics in the order a reader looks for them: F1 first.
READING_ORDER = ("F1", "Precision", "Recall", "AUROC", "AUPRC", "Invalid")
# What follows Table 3's heading wherever it is shown a row per task and model.
TABLE3_LAYOUT = "A row per task and model; the paper's layout (a column per metric and model) is in table3.csv."


def table3_by_model(table3: pd.DataFrame) -> pd.DataFrame:
    """`comparison.table3` (a row per task, a column per metric and model) as a row per task and
    model, F1 first: the same cells, narrow enough to read with many models. The task is named
    on its first row only."""
    metric_of = {column: column.split(" ", 1) for column in table3.columns if column != "Task"}
    models = list(dict.fromkeys(model for _, model in metric_of.values()))
    metrics = [metric for metric in READING_ORDER if any(m == metric for m, _ in metric_of.values())]
    rows = []
    for _, row in table3.iterrows():
        for position, model in enumerate(models):
            rows.append({"Task": row["Task"] if position == 0 else "", "Model": model}
                        | {metric: row.get(f"{metric} {model}", "") for metric in metrics})
    return pd.DataFrame(rows, columns=["Task", "Model", *metrics])


def adjudication_tables(original: pd.DataFrame, adjudicated: pd.DataFrame, summary: pd.DataFrame, reviewers: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """For display: per adjudicated task, the labels changed, Cohen's kappa and each model's F1 on
    the original and the adjudicated gold labels side by side (`comparison.metrics_of_labels`
    frames); and the reviewers' agreement."""
    f1_original = original.set_index(["task", "model"])["f1"]
    f1_adjudicated = adjudicated.set_index(["task", "model"])["f1"]
    models = sorted(adjudicated["model"].unique())
    rows = []
    for _, task in summary.iterrows():
        row = {
            "Task": TASKS[task["task"]].title, "Judged": task["judged"], "Labels changed": task["labels_changed"],
            "Ambiguous": task["ambiguous"], "κ original vs adjudicated": _kappa(task["kappa_original_adjudicated"]),
        }
        for model in models:
            key = (task["task"], model)
            row[f"F1 {model}"] = f"{f1_original[key]:.2f} → {f1_adjudicated[key]:.2f}" if key in f1_adjudicated.index else ""
        rows.append(row)
    agreement = pd.DataFrame({
        "Task": [TASKS[task].title for task in reviewers["task"]],
        "Reviewers": [f"{a} / {b}" for a, b in zip(reviewers["reviewer_a"], reviewers["reviewer_b"])],
        "Items both judged": reviewers["items"], "κ": [_kappa(kappa) for kappa in reviewers["kappa"]],
    })
    return {"by task": pd.DataFrame(rows), "reviewers": agreement}


def _kappa(value: float) -> str:
    return "undefined" if value != value else f"{value:.2f}"


def _adjudication_section(tables: dict[str, pd.DataFrame] | None) -> tuple[str, str, str, str]:
    note = (
        "Gold labels after the reviewers' verdicts (the review page; the adjudicated_gold asset). F1 of each model on "
        "the original → the adjudicated gold labels, both with the comparison's settings; κ is Cohen's kappa over the "
        "items given a label by a verdict. Every metric on the adjudicated labels, with its interval, is in "
        "table3_adjudicated.csv."
    )
    if tables is None:
        return ("adjudication", "Original and adjudicated gold labels", "", "<p class='note'>No gold label has been adjudicated.</p>")
    reviewers = tables["reviewers"]
    content = _table(tables["by task"], "adjudication-by-task") + "<h3>Agreement between reviewers</h3>" + (
        _table(reviewers, "reviewer-agreement") if len(reviewers) else "<p class='note'>No reviewer has judged an item another judged.</p>"
    )
    return ("adjudication", "Original and adjudicated gold labels", note, content)


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


def _sampling_sections(sampled, sampled_differences, headings, accounting, reasoning_png) -> list[tuple[str, str, str, str]]:
    sections = []
    if sampled is not None and len(sampled):
        sections.append((
            "sampled", "Several samples per item",
            "Models answering K samples per item: F1 as the mean over the samples (its interval over items), the standard "
            "deviation of F1 between samples (run to run) and the F1 of each item's majority label (maj@K).",
            _table(sampled, "sampled"),
        ))
    if sampled_differences is not None and len(sampled_differences):
        sections.append((
            "sampled-differences", "Paired differences of sampled models",
            f"{html.escape(headings['sampled_differences'])}.", _table(sampled_differences, "sampled-differences"),
        ))
    if accounting is not None:
        sections.append((
            "accounting", "Reasoning and cost",
            "Per model and task: prompt, reasoning and answer tokens, answers cut at max_tokens and F1 on the finished "
            "ones against all, invalid answers by reason, and generation seconds (GPU-seconds on GPUs) per 1,000 items of "
            "the latest run that generated.", _table(accounting, "accounting"),
        ))
    if reasoning_png is not None:
        image = base64.b64encode(reasoning_png).decode("ascii")
        sections.append(("reasoning-length", "Reasoning length by right and wrong answers", "",
                         f"<img alt='Reasoning length by right and wrong answers' src='data:image/png;base64,{image}'>"))
    return sections


def render_report(
    *, table3: pd.DataFrame, differences: pd.DataFrame, labels: pd.DataFrame, sensitivity: pd.DataFrame,
    forest_png: bytes, provenance: dict[str, pd.DataFrame], headings: dict[str, str],
    auroc_differences: pd.DataFrame | None = None, score_curves: dict[str, bytes] | None = None,
    adjudication: dict[str, pd.DataFrame] | None = None, sampled: pd.DataFrame | None = None,
    sampled_differences: pd.DataFrame | None = None, accounting: pd.DataFrame | None = None, reasoning_png: bytes | None = None,
) -> str:
    """The report's HTML. `differences` is `comparison.differences_table`'s display form;
    `labels` has columns task, model, id, gold, label and invalid_reason; `headings` are
    `comparison.headings`, stating the settings each table was computed with.

    For models that give scores: `auroc_differences` is `comparison.auroc_differences_table`'s
    display form and `score_curves` maps a task to `comparison.score_curves_plot`'s PNG; each,
    when given, adds its section after the paired differences.

    `adjudication` is `adjudication_tables`' output, None when no gold label is adjudicated.
    `sampled` is `comparison.sampled_table`'s display form (models answering several samples
    per item), `sampled_differences` `comparison.sampled_differences_table`'s, `accounting` is `accounting.accounting_table`'s and `reasoning_png`
    `accounting.reasoning_length_plot`'s; each, when given, adds its section.
    Table 3 is shown a row per task and model (`table3_by_model`)."""
    image = base64.b64encode(forest_png).decode("ascii")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("table3", "Table 3", f"{html.escape(headings['table3'])}. {TABLE3_LAYOUT}", _table(table3_by_model(table3), "table3")),
        ("forest-plot", "F1 by task and model", f"{html.escape(headings['forest_plot'])}.",
         f"<img alt='F1 forest plot' src='data:image/png;base64,{image}'>"),
        ("differences", "Paired differences and McNemar's test",
         f"{html.escape(headings['f1_differences'])}. F1(a) - F1(b); McNemar's test is on the items only one "
         "model gets right.", _table(differences, "differences")),
        *_score_sections(auroc_differences, score_curves, headings),
        *_sampling_sections(sampled, sampled_differences, headings, accounting, reasoning_png),
        _adjudication_section(adjudication),
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

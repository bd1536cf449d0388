"""The paper's Table 3 for any number of models, paired differences, and a forest plot."""

from __future__ import annotations

import io
import itertools

import pandas as pd

from medassets.core.metrics import CORRECTIONS, METRICS, SETTINGS, mcnemar, paired_difference
from medassets.tasks import TASK_KEYS, TASKS


CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
_INVALID_POLICY_TEXT = {"negative": "scored as negative", "exclude": "excluded"}


def metrics_settings(metrics: pd.DataFrame) -> dict[str, list]:
    """The confidence levels, invalid-answer policies and resample counts the metrics rows
    were computed with (each the sorted distinct values: partitions may differ)."""
    recorded = metrics.reindex(columns=["task", "model", *SETTINGS])
    unrecorded = recorded[recorded[list(SETTINGS)].isna().any(axis=1)]
    if len(unrecorded):
        partitions = ", ".join(f"{model}|{task}" for task, model in zip(unrecorded["task"], unrecorded["model"]))
        raise ValueError(f"the metrics of {partitions} record no {', '.join(SETTINGS)}: materialize those metrics again")
    return {setting: sorted(recorded[setting].unique().tolist()) for setting in SETTINGS}


def comparison_settings(
    metrics: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str, correction: str,
    pairs: str, reference: str | None,
) -> dict[str, dict]:
    """What each table was computed with: Table 3 and the forest plot with the metrics' own
    settings, the paired differences with the comparison's."""
    return {
        "table3": metrics_settings(metrics),
        "f1_differences": {
            "confidence": confidence, "invalid_policy": invalid, "n_resamples": n_resamples, "seed": seed,
            "correction": correction, "pairs": pairs, "reference": reference,
        },
    }


def _percent(confidence: float) -> str:
    return f"{round(confidence * 100, 4):g}%"


def _intervals(confidences: list[float], policies: list[str], kind: str) -> str:
    """`90% bootstrap intervals; invalid answers excluded`, saying so where partitions differ."""
    levels = " or ".join(_percent(c) for c in confidences) + (" (differing between partitions)" if len(confidences) > 1 else "")
    policy = " or ".join(_INVALID_POLICY_TEXT[p] for p in policies) + (" (differing between partitions)" if len(policies) > 1 else "")
    return f"{levels} {kind} intervals; invalid answers {policy}"


def forest_plot_label(metrics_settings: dict[str, list]) -> str:
    return f"F1 of the positive class ({_intervals(metrics_settings['confidence'], metrics_settings['invalid_policy'], 'bootstrap')})"


def headings(settings: dict[str, dict]) -> dict[str, str]:
    """The heading of each table and the plot, stating the settings its numbers were computed with."""
    table, pairs = settings["table3"], settings["f1_differences"]
    return {
        "table3": "Precision, recall and F1 of the positive class with "
        + _intervals(table["confidence"], table["invalid_policy"], "percentile bootstrap"),
        "forest_plot": forest_plot_label(table),
        "f1_differences": "Paired F1 differences with "
        + _intervals([pairs["confidence"]], [pairs["invalid_policy"]], "paired bootstrap")
        + f"; McNemar's exact test, p adjusted across the tasks of each pair by {CORRECTION_NAMES[pairs['correction']]}",
    }


def interval_cell(value: float, low: float, high: float) -> str:
    """A Table 3 cell: `0.84 (0.80-0.88)`."""
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


def _task_order(tasks) -> list[str]:
    return [task for task in TASK_KEYS if task in set(tasks)]


def table3(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per task; for each metric and model a cell with its interval, then the invalid counts.

    `metrics` has one row per (task, model) with the fields of `binary_report`.
    """
    models = sorted(metrics["model"].unique())
    indexed = metrics.set_index(["task", "model"])
    rows = []
    for task in _task_order(metrics["task"]):
        row = {"Task": TASKS[task].title}
        for metric, model in itertools.product(METRICS, models):
            column = f"{'F1' if metric == 'f1' else metric.capitalize()} {model}"
            if (task, model) in indexed.index:
                r = indexed.loc[(task, model)]
                row[column] = interval_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
            else:
                row[column] = "not evaluated"
        for model in models:
            invalid = indexed["invalid"].get((task, model))
            row[f"Invalid {model}"] = "" if invalid is None else int(invalid)
        rows.append(row)
    return pd.DataFrame(rows)


DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "f1_a", "f1_b", "f1_diff", "f1_diff_low", "f1_diff_high",
    "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_adjusted", "correction",
]


def model_pairs(models, *, pairs: str = "every", reference: str | None = None) -> list[tuple[str, str]]:
    """`every` pair of models (quadratic in their number), or each model against the `reference`."""
    models = sorted(models)
    if pairs == "every":
        return list(itertools.combinations(models, 2))
    if pairs != "reference":
        raise ValueError(f"pairs must be 'every' or 'reference', got {pairs!r}")
    if reference is None:
        raise ValueError("pairs 'reference' compares each model with `reference`: name that model")
    if reference not in models:
        raise ValueError(f"the reference model {reference!r} has no labels; models: {models}")
    return [(model, reference) for model in models if model != reference]


def paired_f1_differences(
    labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str,
    pairs: str = "every", reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models: F1(a) - F1(b) with a paired bootstrap interval, and
    McNemar's exact test, its p-value adjusted across the tasks of the pair (`holm` or `bh`).

    `labels` has columns task, model, id, gold and label (1, 0, or -1 when invalid). Items
    pair by id; an item only one model answered is left out of that pair.
    """
    adjust = CORRECTIONS[correction]
    chosen = model_pairs(labels["model"].unique(), pairs=pairs, reference=reference)
    rows = []
    for task in _task_order(labels["task"]):
        of_task = labels[labels["task"] == task]
        wide = of_task.pivot(index="id", columns="model", values="label")
        gold = of_task.drop_duplicates("id").set_index("id")["gold"].reindex(wide.index)
        for a, b in chosen:
            if a not in wide or b not in wide:
                continue
            both = wide[a].notna() & wide[b].notna()
            truth, pred_a, pred_b = gold[both].to_numpy(), wide.loc[both, a].to_numpy(), wide.loc[both, b].to_numpy()
            result = paired_difference(
                truth, pred_a, pred_b, metric="f1", n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid,
            )
            test = mcnemar(truth, pred_a, pred_b, invalid=invalid)
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": result["n"],
                "f1_a": result["a"], "f1_b": result["b"],
                "f1_diff": result["diff"], "f1_diff_low": result["low"], "f1_diff_high": result["high"],
                "mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
    for _, across_tasks in frame.groupby(["model_a", "model_b"]):
        frame.loc[across_tasks.index, "mcnemar_p_adjusted"] = adjust(across_tasks["mcnemar_p"])
    return frame.astype({"mcnemar_p_adjusted": float})


def differences_table(differences: pd.DataFrame) -> pd.DataFrame:
    """The paired differences for display: `+0.05 (+0.01 to +0.09)` cells, McNemar's discordant
    counts and its p-values, raw and adjusted."""
    correction = CORRECTION_NAMES[differences["correction"].iloc[0]] if len(differences) else "adjusted"
    return pd.DataFrame({
        "Task": [TASKS[t].title for t in differences["task"]],
        "Models": [f"{a} - {b}" for a, b in zip(differences["model_a"], differences["model_b"])],
        "F1 difference": [
            f"{d:+.2f} ({lo:+.2f} to {hi:+.2f})"
            for d, lo, hi in zip(differences["f1_diff"], differences["f1_diff_low"], differences["f1_diff_high"])
        ],
        "Only a right / only b right": [f"{b} / {c}" for b, c in zip(differences["mcnemar_b"], differences["mcnemar_c"])],
        "McNemar p": [f"{p:.3g}" for p in differences["mcnemar_p"]],
        f"p ({correction}, across tasks)": [f"{p:.3g}" for p in differences["mcnemar_p_adjusted"]],
    })


def prompt_sensitivity(metrics: pd.DataFrame, setups: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per base model with several registry entries, and task: each entry's F1 and the spread
    (largest minus smallest). `setups` maps a model to its (base model, prompt setup)."""
    by_base: dict[str, list[str]] = {}
    for model, (base, _) in sorted(setups.items()):
        if model in set(metrics["model"]):
            by_base.setdefault(base, []).append(model)
    indexed = metrics.set_index(["task", "model"])["f1"]
    rows = []
    for base, models in by_base.items():
        if len(models) < 2:
            continue
        for task in _task_order(metrics["task"]):
            f1 = {model: indexed.get((task, model)) for model in models}
            scored = [value for value in f1.values() if value is not None]
            row = {"Base model": base, "Task": TASKS[task].title}
            row |= {f"{model} ({setups[model][1]})": "" if value is None else f"{value:.2f}" for model, value in f1.items()}
            row["Spread"] = f"{max(scored) - min(scored):.2f}" if len(scored) > 1 else ""
            rows.append(row)
    return pd.DataFrame(rows)


def forest_plot(metrics: pd.DataFrame) -> bytes:
    """F1 with its interval per task and model, as a PNG image; its axis label (also the PNG's
    `Description`) states the confidence level and invalid-answer policy of the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _task_order(metrics["task"])
    models = sorted(metrics["model"].unique())
    indexed = metrics.set_index(["task", "model"])
    fig, ax = plt.subplots(figsize=(8, 0.9 * len(tasks) + 1.2))
    step = 0.7 / max(len(models), 1)
    for m, model in enumerate(models):
        ys, xs, lows, highs = [], [], [], []
        for t, task in enumerate(tasks):
            if (task, model) in indexed.index:
                r = indexed.loc[(task, model)]
                ys.append(t + (m - (len(models) - 1) / 2) * step)
                xs.append(r["f1"])
                lows.append(r["f1"] - r["f1_low"])
                highs.append(r["f1_high"] - r["f1"])
        ax.errorbar(xs, ys, xerr=[lows, highs], fmt="o", capsize=3, label=model)
    ax.set_yticks(range(len(tasks)), [TASKS[t].title for t in tasks])
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    label = forest_plot_label(metrics_settings(metrics))
    ax.set_xlabel(label, fontsize="small")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(models), 3), fontsize="small", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110, metadata={"Title": "F1 by task and model", "Description": label})
    plt.close(fig)
    return image.getvalue()

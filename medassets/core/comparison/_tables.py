"""The comparison's statistics: the paper's Table 3 for any number of models, paired F1 and
AUROC differences with their tests, prompt sensitivity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from medassets.core.metrics import (
    CORRECTIONS, METRICS, SCORE_METRICS, binary_report, delong, mcnemar, mcnemar_detectable_difference, mcnemar_sample_size,
    paired_auroc_difference, paired_difference, paired_sampled_difference,
)
from medassets.core.labels import sample_matrix
from medassets.core.comparison._text import NO_SCORES, has_scores, interval_cell
from medassets.tasks import TASK_KEYS, TASKS


def task_order(tasks) -> list[str]:
    return [task for task in TASK_KEYS if task in set(tasks)]


def table3(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per task; for each metric and model a cell with its interval, then the invalid counts.

    `metrics` has one row per (task, model) with the fields of `binary_report`, and may have
    those of `score_report` (NaN for a model without scores). When some row has a finite
    AUROC, AUROC and AUPRC columns follow F1, with `NO_SCORES` for a model without scores.
    """
    models = sorted(metrics["model"].unique())
    indexed = metrics.set_index(["task", "model"])
    rows = []
    for task in task_order(metrics["task"]):
        row = {"Task": TASKS[task].title}
        for metric, model in itertools.product(METRICS, models):
            column = f"{'F1' if metric == 'f1' else metric.capitalize()} {model}"
            if (task, model) in indexed.index:
                r = indexed.loc[(task, model)]
                row[column] = interval_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
            else:
                row[column] = "not evaluated"
        if has_scores(metrics):
            for metric, model in itertools.product(SCORE_METRICS, models):
                column = f"{metric.upper()} {model}"
                if (task, model) not in indexed.index:
                    row[column] = "not evaluated"
                elif np.isfinite(float(indexed.loc[(task, model), metric])):
                    r = indexed.loc[(task, model)]
                    row[column] = interval_cell(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
                else:
                    row[column] = NO_SCORES
        for model in models:
            invalid = indexed["invalid"].get((task, model))
            row[f"Invalid {model}"] = "" if invalid is None else int(invalid)
        rows.append(row)
    return pd.DataFrame(rows)


DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "f1_a", "f1_b", "f1_diff", "f1_diff_low", "f1_diff_high",
    "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_adjusted", "correction", "detectable_diff", "items_needed",
]
POWER = 0.8  # of McNemar's test, for the smallest difference it detects and the items a difference needs


def _adjusted_across_tasks(frame: pd.DataFrame, p: str, adjusted: str, correction: str) -> pd.DataFrame:
    """`frame` (a row per task and pair) with its `p` column adjusted across each pair's tasks into `adjusted`."""
    for _, across_tasks in frame.groupby(["model_a", "model_b"]):
        frame.loc[across_tasks.index, adjusted] = CORRECTIONS[correction](across_tasks[p])
    return frame.astype({adjusted: float})


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


def _paired_items(of_task: pd.DataFrame, chosen: list[tuple[str, str]], values: str):
    """For each chosen pair present in one task's labels: (a, b, gold, a's values, b's values) of
    the items, paired by id, that both models have a value for."""
    wide = of_task.pivot(index="id", columns="model", values=values)
    gold = of_task.drop_duplicates("id").set_index("id")["gold"].reindex(wide.index)
    for a, b in chosen:
        if a in wide and b in wide:
            both = wide[a].notna() & wide[b].notna()
            yield a, b, gold[both].to_numpy(), wide.loc[both, a].to_numpy(), wide.loc[both, b].to_numpy()


def paired_f1_differences(
    labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, invalid: str,
    pairs: str = "every", reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models: F1(a) - F1(b) with a paired bootstrap interval, and
    McNemar's exact test, its p-value adjusted across the tasks of the pair (`holm`, `bh` or `none`);
    and what the items can show (Connor 1987, at the level 1 - confidence and 80% power): the
    smallest difference in accuracy McNemar's test detects given the pair's discordant share
    (`detectable_diff`) and the items the observed difference needs (`items_needed`; NaN where the
    models are right on the same items).

    `labels` has columns task, model, id, gold and label (1, 0, or -1 when invalid). Items
    pair by id; an item only one model answered is left out of that pair.
    """
    chosen = model_pairs(labels["model"].unique(), pairs=pairs, reference=reference)
    rows = []
    for task in task_order(labels["task"]):
        for a, b, truth, pred_a, pred_b in _paired_items(labels[labels["task"] == task], chosen, "label"):
            result = paired_difference(
                truth, pred_a, pred_b, metric="f1", n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid,
            )
            test = mcnemar(truth, pred_a, pred_b, invalid=invalid)
            rows.append(_what_items_can_show(test, alpha=1 - confidence) | {
                "task": task, "model_a": a, "model_b": b, "n": result["n"],
                "f1_a": result["a"], "f1_b": result["b"],
                "f1_diff": result["diff"], "f1_diff_low": result["low"], "f1_diff_high": result["high"],
                "mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
    return _adjusted_across_tasks(frame, "mcnemar_p", "mcnemar_p_adjusted", correction)


def _what_items_can_show(test: dict, *, alpha: float) -> dict:
    """McNemar's detectable difference and the items the observed one needs, from its counts."""
    n, b, c = test["n"], test["b"], test["c"]
    if n == 0:
        return {"detectable_diff": math.nan, "items_needed": math.nan}
    return {
        "detectable_diff": mcnemar_detectable_difference((b + c) / n, n, alpha=alpha, power=POWER),
        "items_needed": math.nan if b == c else mcnemar_sample_size(b / n, c / n, alpha=alpha, power=POWER),
    }


AUROC_DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "auroc_a", "auroc_b", "auroc_diff", "auroc_diff_low", "auroc_diff_high",
    "delong_z", "delong_p", "delong_p_adjusted", "correction",
]


def scored_models(labels: pd.DataFrame, task: str) -> list[str]:
    """The models with a finite score on every one of their items of `task`, sorted."""
    if "score" not in labels:
        return []
    of_task = labels[labels["task"] == task]
    finite = np.isfinite(of_task["score"].astype(float)).groupby(of_task["model"]).all()
    return sorted(finite.index[finite])


def paired_auroc_differences(
    labels: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int,
    pairs: str = "every", reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models both scoring every item of the task: AUROC(a) - AUROC(b)
    with a paired bootstrap interval, and DeLong's test, its p-value adjusted across the tasks
    of the pair (`holm`, `bh` or `none`), like McNemar's in `paired_f1_differences`.

    `labels` has columns task, model, id, gold and score (NaN, or no column, for a model
    without scores). Items pair by id; an item only one model scored is left out of that
    pair. Pairs are chosen among the scored models as `model_pairs` does (none when the
    reference gives no scores); a task whose paired items lack a class, or have fewer than
    two of either, has no row. Fewer than two scored models give an empty frame.
    """
    tasks = task_order(labels["task"])
    scored = {task: scored_models(labels, task) for task in tasks}
    models = sorted(set().union(*scored.values()))
    unscored_reference = pairs == "reference" and reference is not None and reference not in models
    chosen = [] if unscored_reference else model_pairs(
        models, pairs=pairs, reference=reference
    )
    rows = []
    for task in tasks:
        of_task = labels[(labels["task"] == task) & labels["model"].isin(scored[task])]
        if of_task.empty:
            continue
        for a, b, truth, scores_a, scores_b in _paired_items(of_task, chosen, "score"):
            if min(truth.sum(), len(truth) - truth.sum()) < 2:
                continue
            interval = paired_auroc_difference(
                truth, scores_a, scores_b, n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            test = delong(truth, scores_a, scores_b)
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": interval["n"],
                "auroc_a": interval["a"], "auroc_b": interval["b"], "auroc_diff": interval["diff"],
                "auroc_diff_low": interval["low"], "auroc_diff_high": interval["high"],
                "delong_z": test["z"], "delong_p": test["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=AUROC_DIFFERENCE_COLUMNS)
    return _adjusted_across_tasks(frame, "delong_p", "delong_p_adjusted", correction)


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
        for task in task_order(metrics["task"]):
            f1 = {model: indexed.get((task, model)) for model in models}
            scored = [value for value in f1.values() if value is not None]
            row = {"Base model": base, "Task": TASKS[task].title}
            row |= {f"{model} ({setups[model][1]})": "" if value is None else f"{value:.2f}" for model, value in f1.items()}
            row["Spread"] = f"{max(scored) - min(scored):.2f}" if len(scored) > 1 else ""
            rows.append(row)
    return pd.DataFrame(rows)


def metrics_of_labels(labels: pd.DataFrame, *, gold: str, n_resamples: int, confidence: float, seed: int, invalid: str) -> pd.DataFrame:
    """One row per (task, model) of `labels` (task, model, id, gold, label) as the metrics asset
    records it: `binary_report`'s numbers and settings, and `gold` (which gold labels these are)."""
    rows = []
    for (task, model), part in labels.groupby(["task", "model"], sort=True):
        report = binary_report(part["gold"], part["label"], n_resamples=n_resamples, confidence=confidence, seed=seed, invalid=invalid)
        rows.append({"task": task, "model": model, **{k: v for k, v in report.items() if not isinstance(v, list)}, "gold": gold})
    return pd.DataFrame(rows)


SAMPLED_COLUMNS = ["task", "model", "samples", "f1", "f1_low", "f1_high", "f1_run_sd", "f1_majority"]


def sampled_models(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows of the models answering several samples per item, in Table 3's task order:
    F1 as the mean over the samples with its interval, its run-to-run SD and maj@K's F1."""
    sampled = metrics[metrics["samples"] > 1] if "samples" in metrics else metrics.iloc[:0]
    rank = {task: position for position, task in enumerate(TASK_KEYS)}
    ordered = sampled.assign(rank=sampled["task"].map(rank)).sort_values(["rank", "model"])
    return ordered.reindex(columns=SAMPLED_COLUMNS).reset_index(drop=True)


SAMPLED_DIFFERENCE_COLUMNS = [
    "task", "model_a", "model_b", "n", "k_a", "k_b", "accuracy_a", "accuracy_b", "accuracy_diff", "accuracy_diff_low",
    "accuracy_diff_high", "p", "p_adjusted", "correction",
]


def paired_sampled_differences(
    answers: pd.DataFrame, *, n_resamples: int, confidence: float, seed: int, pairs: str = "every",
    reference: str | None = None, correction: str = "holm",
) -> pd.DataFrame:
    """For each task and pair of models of which one at least answers several samples per item:
    the difference in mean accuracy (an item's correctness: the share of its samples that are
    right) with a paired item-bootstrap interval and a sign-flip test (`paired_sampled_difference`),
    its p-value adjusted across the tasks of the pair. `answers` has columns task, model, id,
    sample, gold and label; items pair by id, those both models answered."""
    samples = answers.groupby("model")["sample"].nunique()
    chosen = [
        (a, b) for a, b in model_pairs(answers["model"].unique(), pairs=pairs, reference=reference) if max(samples[a], samples[b]) > 1
    ]
    rows = []
    for task in task_order(answers["task"]):
        of_task = answers[answers["task"] == task]
        for a, b in chosen:
            of_a, of_b = of_task[of_task["model"] == a], of_task[of_task["model"] == b]
            items = sorted(set(of_a["id"]) & set(of_b["id"]))
            if not items:
                continue
            gold = of_a.drop_duplicates("id").set_index("id")["gold"].reindex(items)
            result = paired_sampled_difference(
                gold, sample_matrix(of_a, items), sample_matrix(of_b, items), n_resamples=n_resamples, confidence=confidence, seed=seed,
            )
            rows.append({
                "task": task, "model_a": a, "model_b": b, "n": result["n"], "k_a": result["k_a"], "k_b": result["k_b"],
                "accuracy_a": result["a"], "accuracy_b": result["b"], "accuracy_diff": result["diff"],
                "accuracy_diff_low": result["low"], "accuracy_diff_high": result["high"], "p": result["p_value"], "correction": correction,
            })
    frame = pd.DataFrame(rows, columns=SAMPLED_DIFFERENCE_COLUMNS)
    return _adjusted_across_tasks(frame, "p", "p_adjusted", correction)

"""The comparison of every evaluated model: pure Python, no Dagster.

- `_tables`: the statistics (the paper's Table 3 for any number of models, paired F1 and AUROC
  differences with their tests, prompt sensitivity);
- `_text`: the settings each table was computed with, headings that state them, display forms;
- `_plots`: the forest plot and the score curves.

`compare` computes all of it at once into one `Comparison`. Every public name is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from medassets.core import adjudication
from medassets.core.analysis import AnalysisSettings
from medassets.core.comparison._plots import forest_plot, score_curves_plot
from medassets.core.comparison._tables import (
    AUROC_DIFFERENCE_COLUMNS, DIFFERENCE_COLUMNS, SAMPLED_COLUMNS, SAMPLED_DIFFERENCE_COLUMNS, metrics_of_labels, model_pairs,
    paired_auroc_differences, paired_f1_differences, paired_sampled_differences, prompt_sensitivity, sampled_models, scored_models,
    table3, task_order,
)
from medassets.core.comparison._text import (
    CORRECTION_NAMES, NO_SCORES, RECORDED_SETTINGS, adjustment, auroc_differences_table, comparison_settings,
    differences_table, forest_plot_label, has_samples, has_scores, headings, interval_cell, metrics_settings,
    sampled_differences_table, sampled_table, significance,
)

__all__ = [
    "AUROC_DIFFERENCE_COLUMNS", "CORRECTION_NAMES", "DIFFERENCE_COLUMNS", "NO_SCORES", "RECORDED_SETTINGS", "SAMPLED_COLUMNS",
    "SAMPLED_DIFFERENCE_COLUMNS",
    "AdjudicatedResults", "Comparison", "adjudicated_results", "adjustment", "auroc_differences_table", "compare",
    "comparison_settings", "differences_table", "forest_plot", "forest_plot_label", "has_samples", "has_scores", "headings",
    "interval_cell", "metrics_of_labels", "metrics_settings", "model_pairs", "paired_auroc_differences",
    "paired_f1_differences", "paired_sampled_differences", "prompt_sensitivity", "sampled_differences_table",
    "sampled_models", "sampled_table", "score_curves_plot", "scored_models",
    "significance", "table3",
    "task_order",
]


@dataclass(frozen=True)
class AdjudicatedResults:
    """The models' results on the tasks some reviewer has judged, on the original and on the
    adjudicated gold labels (`metrics_of_labels` frames), what adjudication changed per task and
    how the reviewers agreed."""

    original: pd.DataFrame
    adjudicated: pd.DataFrame
    summary: pd.DataFrame
    reviewers: pd.DataFrame

    @property
    def labels_changed(self) -> dict[str, int]:
        return dict(zip(self.summary["task"], self.summary["labels_changed"].astype(int)))


@dataclass(frozen=True)
class Comparison:
    """Everything the comparison computes, with the settings each table was computed with."""

    table3: pd.DataFrame
    f1_differences: pd.DataFrame
    auroc_differences: pd.DataFrame
    prompt_sensitivity: pd.DataFrame
    sampled: pd.DataFrame  # the models answering several samples per item (`sampled_models`)
    sampled_differences: pd.DataFrame  # pairs with such a model, on mean accuracy (`paired_sampled_differences`)
    settings: dict[str, dict]
    adjudicated: AdjudicatedResults | None

    @property
    def headings(self) -> dict[str, str]:
        return headings(self.settings)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by the name of their report file."""
        tables = {
            "table3": self.table3, "f1_differences": self.f1_differences, "auroc_differences": self.auroc_differences,
            "prompt_sensitivity": self.prompt_sensitivity, "sampled": self.sampled, "sampled_differences": self.sampled_differences,
        }
        if self.adjudicated is not None:
            tables |= {"table3_adjudicated": table3(self.adjudicated.adjudicated), "adjudication": self.adjudicated.summary}
        return tables


def adjudicated_results(
    labels: pd.DataFrame, adjudicated_gold: Mapping[str, pd.DataFrame], verdicts: Mapping[str, Sequence[adjudication.Adjudication]],
    analysis: AnalysisSettings,
) -> AdjudicatedResults | None:
    """The models' results on the adjudicated gold labels of every task whose adjudicated gold
    holds a verdict, beside those on the original labels; None when no gold label is adjudicated."""
    judged = {task: frame for task, frame in adjudicated_gold.items() if task in set(labels["task"]) and (frame["verdict"] != "").any()}
    if not judged:
        return None
    of_tasks = labels[labels["task"].isin(list(judged))]
    rescored = adjudication.with_adjudicated_gold(of_tasks, judged)
    settings = {"n_resamples": analysis.n_resamples, "confidence": analysis.confidence, "seed": analysis.seed, "invalid": analysis.invalid}
    return AdjudicatedResults(
        original=metrics_of_labels(of_tasks, gold="original", **settings),
        adjudicated=metrics_of_labels(rescored, gold="adjudicated", **settings),
        summary=adjudication.adjudication_summary(judged),
        reviewers=adjudication.reviewer_agreement_by_task(judged, verdicts),
    )


def compare(
    metrics: pd.DataFrame, labels: pd.DataFrame, analysis: AnalysisSettings, *, setups: Mapping[str, tuple[str, str]],
    answers: pd.DataFrame | None = None, adjudicated: AdjudicatedResults | None = None,
) -> Comparison:
    """The comparison of the models' `metrics` rows (one per task and model, as the metrics assets
    store them) and `labels` (task, model, id, gold, label, score...: one label per item): Table 3,
    the paired F1 and AUROC differences at the analysis settings, the prompt sensitivity of the
    models with several prompt `setups` (model: (base model, setup)), and, from `answers` (task,
    model, id, sample, gold, label: one label per item and sample; default: `labels`, one sample),
    the sampled models' paired differences in mean accuracy."""
    pairing = {"pairs": analysis.pairs, "reference": analysis.reference, "correction": analysis.correction}
    resampling = {"n_resamples": analysis.n_resamples, "confidence": analysis.confidence, "seed": analysis.seed}
    return Comparison(
        table3=table3(metrics),
        f1_differences=paired_f1_differences(labels, **resampling, invalid=analysis.invalid, **pairing),
        auroc_differences=paired_auroc_differences(labels, **resampling, **pairing),
        prompt_sensitivity=prompt_sensitivity(metrics, setups),
        sampled=sampled_models(metrics),
        sampled_differences=paired_sampled_differences(
            labels.assign(sample=0) if answers is None else answers, **resampling, **pairing,
        ),
        settings=comparison_settings(metrics, **resampling, invalid=analysis.invalid, **pairing),
        adjudicated=adjudicated,
    )

"""Reasoning and cost, accounted per model and task: how many tokens the prompts, the reasoning
and the answers took, how often an answer was cut at `max_tokens` and what that did to F1, why
answers were invalid, and what generating cost in seconds and GPU-seconds per 1,000 items.

How tokens are counted: an answer's completion tokens are its reasoning tokens and its answer
tokens. The engine records the reasoning's share (`reasoning_tokens`: vLLM offline counts the
generated tokens through the last closing `</think>`; an OpenAI-compatible server gives
`usage.completion_tokens_details.reasoning_tokens` where it separates reasoning). An answer whose
reasoning never closed (invalid: `reasoning_cut_off` or `reasoning_unclosed`) is reasoning
throughout. A reply prefix (`<think>\\n`) is prompt, not completion. Where the engine gave no
count (a server that separates no reasoning, answers cached before counts were recorded), the
reasoning and answer tokens of that answer are unknown and left out of their statistics.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medassets.core.answers import part_of, samples_of
from medassets.core.metrics import binary_report
from medassets.core.parsing import CUT_AT_MAX_TOKENS, INVALID_REASONS, REASONING_CUT_OFF, REASONING_UNCLOSED

TOKEN_KINDS = ("prompt", "reasoning", "answer")
# Where a label is invalid, F1 counts it as a negative answer (the metrics' default, the paper's reading).
F1_INVALID_POLICY = "negative"
# Devices that are no GPU of this run: vLLM on a CPU, and a server whose hardware is not known.
NO_GPU_DEVICES = ("cpu", "server")
ACCOUNTING_COLUMNS = [
    "task", "model", "items",
    *(f"{kind}_tokens_{statistic}" for kind in TOKEN_KINDS for statistic in ("median", "p90")),
    "reasoning_counted", "cut_at_max_tokens", "cut_share", "f1_finished", "f1_all",
    *(f"invalid_{reason}" for reason in INVALID_REASONS),
    "generation_s_per_1000", "gpus", "gpu_s_per_1000",
]


@dataclass(frozen=True)
class GenerationCost:
    """What generating a model's batch took: seconds (engine start excluded) for the answers it
    generated (cache misses), on `gpus` GPUs (0: none, or not known)."""

    wall_s: float
    generated: int
    gpus: int

    @property
    def seconds_per_1000(self) -> float:
        return 1000 * self.wall_s / self.generated

    @property
    def gpu_seconds_per_1000(self) -> float | None:
        return self.seconds_per_1000 * self.gpus if self.gpus else None


def generation_cost(metadata: dict[str, Any]) -> GenerationCost | None:
    """The cost a predictions materialization's metadata records; None where it generated nothing
    (every answer cached) or recorded no time. GPUs: the tensor-parallel size on a GPU device."""
    generated, wall_s = int(metadata.get("batch_cache_misses") or 0), metadata.get("batch_wall_s")
    if generated <= 0 or wall_s is None:
        return None
    on_gpu = metadata.get("device") not in (None, *NO_GPU_DEVICES)
    return GenerationCost(float(wall_s), generated, int(metadata.get("tensor_parallel_size") or 1) if on_gpu else 0)


def item_tokens(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per test answer (per item and sample): its id, prompt, reasoning and answer tokens
    (reasoning and answer <NA> where the engine counted none), whether it was cut at max_tokens, its
    label (-1 invalid), why it is invalid, and whether it is right (an invalid answer is not)."""
    test = part_of(predictions, "test")
    test = test.set_index([test["id"], samples_of(test)])
    answers = pd.MultiIndex.from_arrays([labels["id"], samples_of(labels)])
    missing = sorted(answers.difference(test.index))
    if missing:
        raise ValueError(f"parsed labels of answers (id, sample) the predictions lack: {missing[:5]}")
    rows = test.loc[answers]
    completion = rows["completion_tokens"].astype("Int64").to_numpy()
    counted = rows["reasoning_tokens"].astype("Int64").to_numpy() if "reasoning_tokens" in rows else pd.array([pd.NA] * len(rows), dtype="Int64")
    never_closed = labels["invalid_reason"].isin([REASONING_CUT_OFF, REASONING_UNCLOSED]).to_numpy()
    reasoning = pd.array(np.where(never_closed, completion, counted), dtype="Int64")
    return pd.DataFrame({
        "id": labels["id"].to_numpy(),
        "prompt_tokens": rows["prompt_tokens"].astype("Int64").to_numpy(),
        "reasoning_tokens": reasoning,
        "answer_tokens": pd.array(completion, dtype="Int64") - reasoning,
        "cut": (rows["finish_reason"] == CUT_AT_MAX_TOKENS).to_numpy(),
        "label": labels["label"].to_numpy(),
        "invalid_reason": labels["invalid_reason"].to_numpy(),
        "correct": (labels["label"] == labels["gold"]).to_numpy(),
        "gold": labels["gold"].to_numpy(),
    })


def _median_p90(values: pd.Series) -> tuple[float, float]:
    known = values.dropna().astype(float).to_numpy()
    if not len(known):
        return math.nan, math.nan
    return float(np.median(known)), float(np.percentile(known, 90))


def _f1(items: pd.DataFrame) -> float:
    if not len(items):
        return math.nan
    return binary_report(items["gold"].astype(int), items["label"].astype(int), n_resamples=1, invalid=F1_INVALID_POLICY)["f1"]


def accounting_row(task: str, model: str, items: pd.DataFrame, cost: GenerationCost | None) -> dict[str, Any]:
    """A model's accounting on a task, from its `item_tokens` and its generation cost (None: not known)."""
    row: dict[str, Any] = {"task": task, "model": model, "items": len(items)}
    for kind in TOKEN_KINDS:
        row[f"{kind}_tokens_median"], row[f"{kind}_tokens_p90"] = _median_p90(items[f"{kind}_tokens"])
    cut = int(items["cut"].sum())
    row |= {
        "reasoning_counted": int(items["reasoning_tokens"].notna().sum()),
        "cut_at_max_tokens": cut,
        "cut_share": cut / len(items) if len(items) else math.nan,
        "f1_finished": _f1(items[~items["cut"]]),
        "f1_all": _f1(items),
    }
    reasons = items["invalid_reason"].dropna().value_counts()
    unknown = sorted(set(reasons.index) - set(INVALID_REASONS))
    if unknown:
        raise ValueError(f"{model} on {task}: invalid reasons the accounting does not know: {unknown}")
    row |= {f"invalid_{reason}": int(reasons.get(reason, 0)) for reason in INVALID_REASONS}
    row |= {
        "generation_s_per_1000": cost.seconds_per_1000 if cost else math.nan,
        "gpus": cost.gpus if cost else 0,
        "gpu_s_per_1000": (cost.gpu_seconds_per_1000 or math.nan) if cost else math.nan,
    }
    return row


def accounting_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ACCOUNTING_COLUMNS)


def _number(value: float, digits: int = 0) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def accounting_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The accounting for reading: one row per model and task, tokens as `median / p90`, blanks where
    nothing is known (no count, nothing generated in the latest run, no GPU)."""
    shown = []
    for row in frame.to_dict("records"):
        invalid = ", ".join(f"{reason} {row[f'invalid_{reason}']}" for reason in INVALID_REASONS if row[f"invalid_{reason}"])
        shown.append({
            "Model": row["model"], "Task": row["task"], "Items": row["items"],
            **{f"{kind.capitalize()} tokens (median / p90)": (
                f"{_number(row[f'{kind}_tokens_median'])} / {_number(row[f'{kind}_tokens_p90'])}"
                if not math.isnan(row[f"{kind}_tokens_median"]) else ""
            ) for kind in TOKEN_KINDS},
            "Cut at max_tokens": f"{row['cut_at_max_tokens']} ({_number(100 * row['cut_share'], 1)}%)",
            "F1 finished / all": f"{_number(row['f1_finished'], 3)} / {_number(row['f1_all'], 3)}",
            "Invalid by reason": invalid,
            "Generation s per 1,000": _number(row["generation_s_per_1000"], 1),
            "GPU-s per 1,000": _number(row["gpu_s_per_1000"], 1),
        })
    return pd.DataFrame(shown)


def reasoning_length_plot(items: pd.DataFrame, title: str = "Reasoning length by correct and wrong answers") -> bytes:
    """Reasoning tokens of right and wrong answers, a pair of box plots per model (`items`: the
    `item_tokens` of each model with a `model` column), as a PNG image. Answers whose reasoning
    the engine did not count are left out; the x labels give how many answers each box holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(items["model"].unique())
    counted = items[items["reasoning_tokens"].notna()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.8 * len(models) + 1.5), 3.6))
    colors = {True: "#4c9a2a", False: "#c0392b"}
    for m, model in enumerate(models):
        for offset, correct in ((-0.18, True), (0.18, False)):
            values = counted.loc[(counted["model"] == model) & (counted["correct"] == correct), "reasoning_tokens"].astype(float).to_numpy()
            if len(values):
                box = ax.boxplot([values], positions=[m + offset], widths=0.3, patch_artist=True, showfliers=True)
                box["boxes"][0].set_facecolor(colors[correct])
                box["boxes"][0].set_alpha(0.6)
    ticks = [
        f"{model}\nright {int(((counted['model'] == model) & counted['correct']).sum())}, "
        f"wrong {int(((counted['model'] == model) & ~counted['correct']).sum())}"
        for model in models
    ]
    ax.set_xticks(range(len(models)), ticks, fontsize="small")
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_ylabel("reasoning tokens per answer")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c], alpha=0.6) for c in (True, False)]
    ax.legend(handles, ["right", "wrong (invalid included)"], fontsize="small", frameon=False)
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110, metadata={"Title": title, "Description": ", ".join(models)})
    plt.close(fig)
    return image.getvalue()

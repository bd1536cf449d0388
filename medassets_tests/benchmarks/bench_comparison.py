"""Benchmark of the comparison's logic with many models: 30 models x 6 tasks (target < 30 s).

    python medassets_tests/benchmarks/bench_comparison.py [--models 30] [--rounds 3]

Synthetic parsed labels with the paper's test-set sizes (20% of Table 1's rows per task),
then everything the `comparison` asset computes from them: Table 3 (from per-(task, model)
metrics), the paired bootstrap F1 differences and McNemar's test with Holm's correction for
`every` pair (435 pairs x 6 tasks for 30 models) and for each model against a `reference`,
the prompt sensitivity table, the forest plot and the HTML report. Prints the median of the
rounds for each part, the total against the 30 s target, and the every/reference ratio.
"""

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from medassets.core import comparison, report
from medassets.core.metrics import binary_report
from medassets.tasks import TASK_KEYS, TASKS


def synthetic_labels(n_models: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for task in TASK_KEYS:
        n = round(TASKS[task].total * 0.2)
        gold = (rng.random(n) < TASKS[task].positive_rate).astype(int)
        ids = [f"{task}-{i:05d}" for i in range(n)]
        for m in range(n_models):
            label = np.where(rng.random(n) < rng.uniform(0.6, 0.9), gold, 1 - gold)
            label[rng.random(n) < 0.02] = -1
            frames.append(pd.DataFrame({
                "task": task, "model": f"model-{m:02d}", "id": ids, "gold": gold, "label": label,
                "invalid_reason": np.where(label == -1, "no_phrase", None),
            }))
    return pd.concat(frames, ignore_index=True)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def one_round(labels: pd.DataFrame, models: list[str]) -> dict[str, float]:
    seconds = {}
    metrics, seconds["metrics (per partition)"] = timed(lambda: pd.DataFrame([
        {"task": task, "model": model, **{k: v for k, v in binary_report(part["gold"], part["label"]).items() if not isinstance(v, list)}}
        for (task, model), part in labels.groupby(["task", "model"])
    ]))
    table, seconds["table3"] = timed(lambda: comparison.table3(metrics))
    options = {"n_resamples": 1000, "confidence": 0.95, "seed": 0, "invalid": "negative"}
    every, seconds["differences, every pair"] = timed(lambda: comparison.paired_f1_differences(labels, **options))
    _, seconds["differences, against a reference"] = timed(
        lambda: comparison.paired_f1_differences(labels, pairs="reference", reference=models[0], **options)
    )
    setups = {model: ("one base", f"setup {i}") for i, model in enumerate(models)}
    sensitivity, seconds["prompt sensitivity"] = timed(lambda: comparison.prompt_sensitivity(metrics, setups))
    plot, seconds["forest plot"] = timed(lambda: comparison.forest_plot(metrics))
    _, seconds["HTML report"] = timed(lambda: report.render_report(
        table3=table, differences=comparison.differences_table(every), labels=labels, sensitivity=sensitivity,
        forest_png=plot, provenance={}, headings=comparison.headings(comparison.comparison_settings(
            metrics, **options, correction="holm", pairs="every", reference=None,
        )),
    ))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    labels = synthetic_labels(args.models)
    models = sorted(labels["model"].unique())
    print(f"{args.models} models x {len(TASK_KEYS)} tasks, {len(labels):,} parsed labels; {args.rounds} rounds")
    rounds = [one_round(labels, models) for _ in range(args.rounds)]
    medians = {part: statistics.median(r[part] for r in rounds) for part in rounds[0]}
    for part, seconds in medians.items():
        print(f"  {part:36s} {seconds:7.2f} s")
    total = sum(seconds for part, seconds in medians.items() if part != "differences, against a reference")
    print(f"comparison with every pair: {total:.1f} s (target < 30 s): {'met' if total < 30 else 'MISSED'}")
    ratio = medians["differences, every pair"] / medians["differences, against a reference"]
    print(f"every pair / against a reference: {ratio:.1f}x ({len(models) * (len(models) - 1) // 2} vs {len(models) - 1} pairs)")


if __name__ == "__main__":
    main()

"""`make run`: materialize every asset headless, for every registered model, and print F1 by model and task.

Runs go into the Dagster instance of DAGSTER_HOME, so the Dagster UI shows them afterwards.
"""

import io
import json
import signal
import sys
import textwrap
import time

import pandas as pd
from dagster import DagsterInstance

from medassets import paths
from medassets.core.accounting import accounting_table
from medassets.core.comparison import NO_SCORES, differences_table, headings, sampled_table, significance
from medassets.core.processes import end_children
from medassets.core.registry import load_registry
from medassets.definitions import defs
from medassets.defs import jobs
from medassets.defs.io import AssetStorage
from medassets.defs.partitions import (
    ensemble_partitions, model_partitions, model_range_tags, partition_changes, registered_partitions, task_range_tags,
)
from medassets.defs.runs import owner_tags, wait_for_pools
from medassets.tasks import TASK_KEYS, TASKS

_QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# Processes a run started (engines, compute-log tails) get this long to end after it.
CHILDREN_GRACE_S = 30


def _run(instance: DagsterInstance, job, label: str, tags: dict[str, str] | None = None, **kwargs) -> None:
    started = time.monotonic()
    job_def = defs.resolve_job_def(job.name)
    wait_for_pools(instance, job_def.graph.pools)  # after failing the runs whose process is gone, which frees their slots
    result = job_def.execute_in_process(
        instance=instance, run_config=_QUIET, raise_on_error=False, tags=(tags or {}) | owner_tags(), **kwargs
    )
    if not result.success:
        sys.exit(f"medassets: {label} failed (run {result.run_id}); see the log above or the Dagster UI")
    print(f"medassets: {label}: done in {time.monotonic() - started:.1f} s", flush=True)


def main() -> None:
    if not paths.dagster_home():
        sys.exit("medassets: set DAGSTER_HOME (make run sets it to the repository root)")
    # Ctrl-C and SIGTERM interrupt it wherever it started: a process started in the background by a
    # shell inherits SIGINT ignored, and Dagster's runs give SIGTERM SIGINT's handler, so it would
    # ignore SIGTERM too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _run_everything()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM once a Dagster run has mapped it to Ctrl-C's handler; a run in progress has failed
        sys.exit("medassets: interrupted")
    finally:
        for process in end_children(CHILDREN_GRACE_S):
            print(f"medassets: killed process {process}, still running {CHILDREN_GRACE_S} s after the runs", file=sys.stderr)
    print_results(AssetStorage())


def _run_everything() -> None:
    registry = load_registry(paths.registry_path())
    registered = registered_partitions(registry)
    models, ensembles = registered[model_partitions.name], registered[ensemble_partitions.name]
    with DagsterInstance.get() as instance:
        for dimension, (added, removed) in partition_changes(registry, instance).items():  # as the registry sensor keeps them
            for name in removed:
                instance.delete_dynamic_partition(dimension, name)
            instance.add_dynamic_partitions(dimension, added)
        for task in TASK_KEYS:
            _run(instance, jobs.prepare_data_job, f"data for {task}", partition_key=task)
        if any(spec.uses_embedded_model for spec in registry.values()):
            _run(instance, jobs.prepare_embedded_model_job, "embedded model")
        _run(instance, jobs.observe_models_job, "model revisions")
        _run(instance, jobs.observe_analysis_job, f"analysis settings ({paths.analysis_path()})")
        # One run per stage over every partition: entries that share weights share one engine.
        in_order = instance.get_dynamic_partitions(model_partitions.name)
        every_model = model_range_tags(in_order[0], in_order[-1])
        _run(instance, jobs.generate_job, f"predictions of {len(models)} models", tags=every_model)
        _run(instance, jobs.evaluate_job, f"evaluation of {len(models)} models", tags=every_model)
        if ensembles:
            _run(instance, jobs.observe_ensembles_job, "ensemble rules")
            in_order = instance.get_dynamic_partitions(ensemble_partitions.name)
            _run(instance, jobs.evaluate_ensembles_job, f"evaluation of {len(ensembles)} ensembles", tags=model_range_tags(in_order[0], in_order[-1]))
        _run(instance, jobs.compare_job, "comparison and report")
        _run(instance, jobs.analyze_errors_job, f"error analysis of {len(TASK_KEYS)} tasks", tags=task_range_tags())


def print_results(storage: AssetStorage, *, shown_differences: int = 10) -> None:
    """F1 of each model on each task, and the significant paired differences (the
    `shown_differences` of smallest adjusted p), as the comparison stored them, under headings
    that state the settings it recorded; within 100 columns for model names up to about 40
    characters, whatever their number. The full tables are in the reports folder, which it names."""
    table = pd.read_csv(io.BytesIO(storage.read_bytes("reports/table3.csv")), keep_default_na=False)
    differences = pd.read_csv(io.BytesIO(storage.read_bytes("reports/f1_differences.csv")))
    settings = json.loads(storage.read_bytes("reports/settings.json"))
    titles = headings(settings)
    level = significance(settings["f1_differences"]["confidence"])
    numbers = {title: str(number) for number, title in enumerate(table["Task"], start=1)}
    _print_wrapped(f"\nF1 by model and task. Table 3: {titles['table3']}; intervals, precision and recall in table3.csv.\n")
    print(f1_by_model(table).to_markdown(index=False, tablefmt="simple", disable_numparse=True))
    scored = auroc_by_model(table)
    if len(scored):
        _print_wrapped("\nAUROC of the models that give scores, by task (intervals and AUPRC in table3.csv):\n")
        print(scored.to_markdown(index=False, tablefmt="simple", disable_numparse=True))
    _print_wrapped("Tasks: " + "; ".join(f"{number} {title}" for title, number in numbers.items()) + ".")
    significant = differences[differences["mcnemar_p_adjusted"] < level].sort_values("mcnemar_p_adjusted")
    p_kind = "a p" if settings["f1_differences"]["correction"] == "none" else "an adjusted p"
    count = f"{len(significant)} of {len(differences)} paired differences (task x pair) have {p_kind} below {level:g}"
    if len(significant) > shown_differences:
        count += f"; the {shown_differences} of smallest p"
    if len(differences):  # two models or more
        _print_wrapped(f"\n{titles['f1_differences']}. {count}{':' if len(significant) else '.'}\n")
    if len(significant):
        shown = differences_table(significant.head(shown_differences))
        shown = pd.DataFrame({
            "Task": shown["Task"].map(numbers), "Models": shown["Models"], "F1 difference": shown["F1 difference"],
            "p" if settings["f1_differences"]["correction"] == "none" else "p adjusted": shown.iloc[:, -1],
        })
        print(shown.to_markdown(index=False, tablefmt="simple", disable_numparse=True))
    _print_sampled(storage, numbers)
    _print_accounting(storage, numbers)
    print(f"\nEvery table in full (CSV, Parquet) and the forest plot: {storage.url('reports')}")
    print(f"Report (one HTML file, opens offline): {storage.url('reports/report.html')}")
    print(f"Asset files: {storage.url('assets')}")
    print("Open the Dagster UI on these results with: make ui")


def _report_table(storage: AssetStorage, name: str) -> pd.DataFrame | None:
    """A table of reports/, None where the comparison that wrote them predates it."""
    try:
        return pd.read_csv(io.BytesIO(storage.read_bytes(f"reports/{name}.csv")))
    except FileNotFoundError:
        return None


def _print_sampled(storage: AssetStorage, numbers: dict[str, str]) -> None:
    sampled = _report_table(storage, "sampled")
    if sampled is None or not len(sampled):
        return
    shown = sampled_table(sampled)
    _print_wrapped("\nModels answering several samples per item: F1 as the mean over the samples (interval over items), its "
                   "standard deviation between samples and the F1 of each item's majority label:\n")
    print(shown.assign(Task=shown["Task"].map(numbers)).to_markdown(index=False, tablefmt="simple", disable_numparse=True))


def _print_accounting(storage: AssetStorage, numbers: dict[str, str]) -> None:
    accounting = _report_table(storage, "accounting")
    if accounting is None or not len(accounting):
        return
    rank = {task: position for position, task in enumerate(TASK_KEYS)}
    ordered = accounting.assign(rank=accounting["task"].map(rank)).sort_values(["model", "rank"])
    shown = accounting_table(ordered)
    compact = pd.DataFrame({
        "Model": shown["Model"],
        "Task": shown["Task"].map({task: numbers.get(TASKS[task].title, task) for task in TASKS}),
        "Answer": shown["Answer tokens (median / p90)"],
        "Reasoning": shown["Reasoning tokens (median / p90)"],
        "Cut": [f"{100 * share:.0f}%" for share in ordered["cut_share"].fillna(0)],
        "F1 fin. / all": shown["F1 finished / all"],
        "s / 1k": shown["Generation s per 1,000"],
    })
    _print_wrapped("\nReasoning and cost by model and task: answer and reasoning tokens as median / p90, the share of "
                   "answers cut at max_tokens, F1 on the answers that finished and on all, generation seconds per 1,000 "
                   "items (every column, invalid answers by reason and GPU-seconds in accounting.csv):\n")
    print(compact.to_markdown(index=False, tablefmt="simple", disable_numparse=True))


def _print_wrapped(text: str) -> None:
    print("\n".join(textwrap.fill(line, 100) if line else "" for line in text.split("\n")))


def auroc_by_model(table3: pd.DataFrame) -> pd.DataFrame:
    """A row per model that gives scores, a column per task (as `f1_by_model`): its AUROC."""
    rows = []
    for column in (column for column in table3.columns if column.startswith("AUROC ")):
        cells = table3[column].astype(str)
        if (cells != NO_SCORES).any():
            auroc = [cell.split(" ")[0] if cell not in (NO_SCORES, "not evaluated") else "-" for cell in cells]
            rows.append({"Model": column.removeprefix("AUROC "), **{str(number): value for number, value in enumerate(auroc, start=1)}})
    return pd.DataFrame(rows)


def f1_by_model(table3: pd.DataFrame) -> pd.DataFrame:
    """A row per model, a column per task (numbered in Table 3's row order): its F1 without the
    interval ("-" where not evaluated), then its invalid answers over all tasks."""
    models = [column.removeprefix("F1 ") for column in table3.columns if column.startswith("F1 ")]
    rows = []
    for model in models:
        f1 = [cell.split(" ")[0] if cell != "not evaluated" else "-" for cell in table3[f"F1 {model}"].astype(str)]
        invalid = pd.to_numeric(table3[f"Invalid {model}"], errors="coerce").sum()
        rows.append({"Model": model, **{str(number): value for number, value in enumerate(f1, start=1)}, "Invalid": int(invalid)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()

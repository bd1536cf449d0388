"""`make run`: materialize every asset headless, for every registered model, and print Table 3.

Runs go into the Dagster instance of DAGSTER_HOME, so the Dagster UI shows them afterwards.
"""

import io
import json
import sys
import time

import pandas as pd
from dagster import DagsterInstance

from medassets import paths
from medassets.core.comparison import differences_table, headings
from medassets.core.registry import load_registry
from medassets.definitions import defs
from medassets.defs import jobs
from medassets.defs.io import AssetStorage
from medassets.defs.partitions import ensemble_partitions, model_partitions, model_range_tags, partition_key, registered_partitions
from medassets.tasks import TASK_KEYS

_QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run(instance: DagsterInstance, job, label: str, **kwargs) -> None:
    started = time.monotonic()
    result = defs.resolve_job_def(job.name).execute_in_process(
        instance=instance, run_config=_QUIET, raise_on_error=False, **kwargs
    )
    if not result.success:
        sys.exit(f"medassets: {label} failed (run {result.run_id}); see the log above or the Dagster UI")
    print(f"medassets: {label}: done in {time.monotonic() - started:.1f} s", flush=True)


def main() -> None:
    if not paths.dagster_home():
        sys.exit("medassets: set DAGSTER_HOME (make run sets it to the repository root)")
    registry = load_registry(paths.registry_path())
    registered = registered_partitions(registry)
    models, ensembles = registered[model_partitions.name], registered[ensemble_partitions.name]
    with DagsterInstance.get() as instance:
        for dimension, names in registered.items():  # in step with the registry, as its sensor keeps them
            known = instance.get_dynamic_partitions(dimension)
            for removed in set(known) - set(names):
                instance.delete_dynamic_partition(dimension, removed)
            instance.add_dynamic_partitions(dimension, [name for name in names if name not in known])
        for task in TASK_KEYS:
            _run(instance, jobs.prepare_data_job, f"data for {task}", partition_key=task)
        if any(spec.uses_embedded_model for spec in registry.values()):
            _run(instance, jobs.prepare_embedded_model_job, "embedded model")
        _run(instance, jobs.observe_models_job, "model revisions")
        # One run over every model's six tasks: entries that share weights share one engine.
        in_order = instance.get_dynamic_partitions(model_partitions.name)
        _run(instance, jobs.generate_job, f"predictions of {len(models)} models", tags=model_range_tags(in_order[0], in_order[-1]))
        for model in models:
            for task in TASK_KEYS:
                _run(instance, jobs.evaluate_job, f"evaluation of {model} on {task}", partition_key=partition_key(model, task))
        if ensembles:
            _run(instance, jobs.observe_ensembles_job, "ensemble rules")
        for ensemble in ensembles:
            for task in TASK_KEYS:
                _run(instance, jobs.evaluate_ensembles_job, f"evaluation of {ensemble} on {task}", partition_key=partition_key(ensemble, task))
        _run(instance, jobs.compare_job, "comparison")
        for task in TASK_KEYS:
            _run(instance, jobs.analyze_errors_job, f"error analysis of {task}", partition_key=task)

    print_results(AssetStorage())


def print_results(storage: AssetStorage) -> None:
    """Table 3 and the paired differences as the comparison stored them, under headings that
    state the settings it recorded having computed them with."""
    table = pd.read_csv(io.BytesIO(storage.read_bytes("reports/table3.csv")), keep_default_na=False)
    differences = pd.read_csv(io.BytesIO(storage.read_bytes("reports/f1_differences.csv")))
    titles = headings(json.loads(storage.read_bytes("reports/settings.json")))
    print(f"\nTable 3: {titles['table3']}\n")
    print(table.to_markdown(index=False))
    print(f"\n{titles['f1_differences']}\n")
    print(differences_table(differences).to_markdown(index=False))
    print(f"\nReport (one HTML file, opens offline): {storage.url('reports/report.html')}")
    print(f"Reports (CSV, Parquet, forest plot): {storage.url('reports')}")
    print(f"Asset files: {storage.url('assets')}")
    print("Open the Dagster UI on these results with: make ui")


if __name__ == "__main__":
    main()

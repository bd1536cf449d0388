"""Runs medassets' Dagster jobs in a process of its own, for the slow tests and the benchmark.

    python medassets_tests/dagster_runs.py --instance DIR --out RESULT.json [--multiprocess] \
        JOB | JOB:KEY | JOB:FIRST..LAST [@CONFIG.json] ...

The runs go one after the other into a persistent Dagster instance in DIR (configured by
DIR/dagster.yaml if there is one, whose relative paths are read from the working
directory); they execute in
this process, as `make run` executes them, or with --multiprocess in a process per step, as
the UI executes them, tagged with this process as `make run` tags them. MEDASSETS_HOME, MEDASSETS_REGISTRY and MEDASSETS_DATASETS are read as
medassets reads them, and every registered model (ensemble) is added as a `model` (`ensemble`)
partition first.
RESULT.json holds, per run: success, the materialization metadata by asset and partition
key, the log messages with their times, and the errors of failed steps. A run followed by
@CONFIG.json runs with that file's run config (as the launchpad would give it).
(No test_ prefix: pytest does not collect it.)
"""

import argparse
import json
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, execute_job, reconstructable


def _job(name: str):
    from medassets.definitions import defs

    return defs.resolve_job_def(name)


# reconstructable() needs module-level functions: step processes rebuild the job from them.
def prepare_data():
    return _job("prepare_data")


def prepare_embedded_model():
    return _job("prepare_embedded_model")


def observe_models():
    return _job("observe_models")


def generate():
    return _job("generate")


def evaluate():
    return _job("evaluate")


def observe_ensembles():
    return _job("observe_ensembles")


def evaluate_ensembles():
    return _job("evaluate_ensembles")


def compare():
    return _job("compare")


def analyze_errors():
    return _job("analyze_errors")


def observe_analysis():
    return _job("observe_analysis")


def observe_adjudications():
    return _job("observe_adjudications")


def adjudicate():
    return _job("adjudicate")


JOBS = {
    job.__name__: job
    for job in (
        prepare_data, prepare_embedded_model, observe_models, observe_ensembles, generate, evaluate, evaluate_ensembles, compare,
        analyze_errors, observe_analysis, observe_adjudications, adjudicate,
    )
}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def generate_range(first_model: str, last_model: str | None = None) -> str:
    """The `generate` run over the six tasks of the models from first to last, as this runner takes it."""
    from medassets.defs.partitions import partition_key
    from medassets.tasks import TASK_KEYS

    return f"generate:{partition_key(first_model, TASK_KEYS[0])}..{partition_key(last_model or first_model, TASK_KEYS[-1])}"


def partition_tags(keys: str) -> dict[str, str]:
    if not keys:
        return {}
    if ".." in keys:
        first, last = keys.split("..")
        return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return {"dagster/partition": keys}


def _plain(value):
    value = getattr(value, "value", value)
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


def run_report(instance: DagsterInstance, run_id: str, success: bool) -> dict:
    materializations: dict[str, dict[str, dict]] = {}
    logs, errors = [], []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            logs.append({"time": entry.timestamp, "message": entry.user_message})
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            metadata = {key: _plain(value) for key, value in materialization.metadata.items()}
            asset = materialization.asset_key.to_user_string()
            materializations.setdefault(asset, {})[str(materialization.partition)] = metadata
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            errors.append(event.event_specific_data.error.to_string())
    return {"run_id": run_id, "success": success, "materializations": materializations, "logs": logs, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instance", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--multiprocess", action="store_true", help="a process per step, as in the UI")
    parser.add_argument("runs", nargs="+", help="JOB, JOB:KEY or JOB:FIRST..LAST, then @CONFIG.json for run config")
    args = parser.parse_args()

    from medassets import paths
    from medassets.core.registry import load_registry
    from medassets.defs.partitions import registered_partitions
    from medassets.defs.runs import owner_tags

    args.instance.mkdir(parents=True, exist_ok=True)
    reports = []
    with DagsterInstance.from_config(str(args.instance)) as instance:
        for dimension, names in registered_partitions(load_registry(paths.registry_path())).items():
            known = set(instance.get_dynamic_partitions(dimension))
            instance.add_dynamic_partitions(dimension, [name for name in names if name not in known])
        for run in args.runs:
            run, _, config_file = run.partition("@")
            job, _, keys = run.partition(":")
            started = time.time()
            run_config = json.loads(Path(config_file).read_text()) if config_file else {}
            run_config |= {} if args.multiprocess else IN_PROCESS
            with execute_job(reconstructable(JOBS[job]), instance, run_config, partition_tags(keys) | owner_tags()) as result:
                report = run_report(instance, result.run_id, result.success)
            reports.append(report | {"job": job, "keys": keys, "started": started, "ended": time.time()})
            if not result.success:
                break
    args.out.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()

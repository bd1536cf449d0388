"""Runs medassets' Dagster jobs in a process of their own, for the slow tests and the benchmark.

    python medassets_tests/dagster_runs.py --instance DIR --out RESULT.json JOB:KEY [JOB:FIRST..LAST ...]

`generate` runs go through Dagster's default executor (a process per step, as in the UI); the
data and weights jobs, in process (faster). Runs go one after the other, in a persistent instance in DIR. MEDASSETS_HOME, MEDASSETS_REGISTRY and
MEDASSETS_DATASETS are read as medassets reads them; every registered model is added as a
`model` partition first. RESULT.json holds, per run: success, the materialization metadata
by asset and partition key, the log messages with their times, and the errors of failed steps.
Not collected by pytest (no test_ prefix).
"""

import argparse
import json
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, execute_job, reconstructable


def _job(name: str):
    from medassets.definitions import defs

    return defs.resolve_job_def(name)


# reconstructable() needs module-level functions: the step processes rebuild the job from them.
def prepare_data():
    return _job("prepare_data")


def prepare_model():
    return _job("prepare_model")


def generate():
    return _job("generate")


JOBS = {"prepare_data": prepare_data, "prepare_model": prepare_model, "generate": generate}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def partition_tags(keys: str) -> dict[str, str]:
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
    parser.add_argument("runs", nargs="+", help="JOB:KEY or JOB:FIRST..LAST")
    args = parser.parse_args()

    from medassets import paths
    from medassets.core.registry import load_registry

    args.instance.mkdir(parents=True, exist_ok=True)
    reports = []
    with DagsterInstance.local_temp(str(args.instance)) as instance:
        models = list(load_registry(paths.registry_path()))
        known = set(instance.get_dynamic_partitions("model"))
        instance.add_dynamic_partitions("model", [m for m in models if m not in known])
        for run in args.runs:
            job, keys = run.split(":", 1)
            started = time.time()
            run_config = None if job == "generate" else IN_PROCESS
            with execute_job(reconstructable(JOBS[job]), instance, run_config, partition_tags(keys)) as result:
                report = run_report(instance, result.run_id, result.success)
            reports.append(report | {"job": job, "keys": keys, "started": started, "ended": time.time()})
            if not result.success:
                break
    args.out.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()

"""Re-evaluation without anyone re-running a benchmark by hand.

- A new revision of a model's weights (observed by `model_weights`), new prompts, or a
  change of an asset's own code re-runs exactly the partitions it affects, and what
  follows them (declarative automation). An ensemble's labels depend on the models' parsed
  labels and on its rules (`ensemble_rules`): new labels of a model, or changed rules, re-run
  them the same way, and a new ensemble runs once its members' labels exist.
- The `model_registry` sensor keeps the `model` and `ensemble` partitions in step with the
  registry: a new model gets its partition and a run of its six tasks; a new ensemble its
  partition; a removed entry loses its partition (its stored results stay on disk). When an
  entry is added or edited it has the models (or the ensembles' rules) observed: an entry's
  output version decides which partitions are stale (an edit of `shots` makes them stale, one
  of `gpu_memory_utilization` does not).
- The `analysis_file` sensor observes the analysis settings file when it changes: the metrics,
  the ensembles' metrics and the comparison re-run with the new settings.
- The `review_verdicts` sensor observes the reviewers' verdicts (`adjudications`) when a task's
  adjudicated labels change: that task's `adjudicated_gold`, the metrics on it and the
  comparison re-run.
- The weekly schedule observes every model's weights; automation re-runs what changed.

Whether they start running, how often they are evaluated and the schedule's cron are
settings (`paths.py`), passed in when the definitions are built.
"""

import hashlib
import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from medassets import paths
from medassets.core.analysis import load_analysis
from medassets.core.registry import ModelEntry, load_registry
from medassets.defs.adjudication import verdict_versions
from medassets.defs.jobs import generate_job, observe_adjudications_job, observe_analysis_job, observe_ensembles_job, observe_models_job
from medassets.defs.partitions import ensemble_partitions, model_partitions, model_range_tags, partition_changes, registered_partitions
from medassets.tasks import TASK_KEYS


def entry_versions(registry: dict[str, ModelEntry]) -> dict[str, str]:
    """Each registry entry as the file states it (every field, and its chat template's text),
    hashed: cheap to take every tick, unlike the weights' revision, so any edit is seen at once
    and the observation that follows decides what is stale (engines.output_version)."""
    versions = {}
    for name, spec in registry.items():
        try:
            stated = [spec.model_dump(mode="json"), spec.output_settings()]
        except OSError as exc:  # a chat template that cannot be read: observing the model reports it
            stated = [spec.model_dump(mode="json"), str(exc)]
        versions[name] = hashlib.sha256(json.dumps(stated, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return versions


def model_registry(context: SensorEvaluationContext) -> SensorResult:
    """Keeps the model and ensemble partitions in step with the model registry file, and has
    the entries observed whose settings changed since the last tick (its cursor: each entry's
    version): a new or edited model's `model_weights`, a new or edited ensemble's `ensemble_rules`."""
    registry = load_registry(paths.registry_path())
    registered = registered_partitions(registry)
    changes = partition_changes(registry, context.instance)
    requests = []
    for partitions in (model_partitions, ensemble_partitions):
        added, removed = changes[partitions.name]
        if added:
            requests.append(partitions.build_add_request(added))
        if removed:
            requests.append(partitions.build_delete_request(removed))
            context.log.info(f"removed {partitions.name} partitions {removed}; their stored results stay readable")
    versions = entry_versions(registry)
    last = json.loads(context.cursor) if context.cursor else {}
    changed = {dimension: [name for name in names if last.get(name) != versions[name]] for dimension, names in registered.items()}
    runs = []
    if changed[model_partitions.name]:  # so that automation sees their new output versions
        context.log.info(f"models new or edited in the registry, observed: {changed[model_partitions.name]}")
        runs.append(RunRequest(job_name=observe_models_job.name))
    new_models = changes[model_partitions.name][0]
    if new_models:
        prepared = context.instance.get_materialized_partitions(AssetKey("prompts"))
        if prepared >= set(TASK_KEYS):
            runs += [RunRequest(job_name=generate_job.name, tags=model_range_tags(name)) for name in new_models]
        else:
            context.log.info(f"added models {new_models}; their predictions wait for the prompts of every task (make run)")
    if changed[ensemble_partitions.name]:
        runs.append(RunRequest(job_name=observe_ensembles_job.name))
    return SensorResult(run_requests=runs, dynamic_partitions_requests=requests, cursor=json.dumps(versions, sort_keys=True))


def analysis_file(context: SensorEvaluationContext) -> SensorResult:
    """Observes the analysis settings when their file's settings differ from the last tick's
    (its cursor: their version). A file that does not validate fails the tick, naming the file and field."""
    version = load_analysis(paths.analysis_path()).version()
    runs = [RunRequest(job_name=observe_analysis_job.name)] if version != context.cursor else []
    return SensorResult(run_requests=runs, cursor=version)


def review_verdicts(context: SensorEvaluationContext) -> SensorResult:
    """Observes the adjudications when some task's adjudicated labels differ from those of the
    last tick (its cursor: each judged task's labels version)."""
    versions = json.dumps(verdict_versions(), sort_keys=True)
    if versions == (context.cursor or "{}"):
        return SensorResult(run_requests=[], cursor=versions)
    return SensorResult(run_requests=[RunRequest(job_name=observe_adjudications_job.name)], cursor=versions)


def automation(*, running: bool, cron: str, interval_s: int | None = None) -> tuple[list[SensorDefinition], list[ScheduleDefinition]]:
    """The sensors and the schedule, started running or stopped; automation and the sensors
    evaluated every `interval_s` seconds (default: Dagster's 30 for automation, 60 for the sensors)."""
    sensor_status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED
    reevaluation = AutomationConditionSensorDefinition(
        "reevaluation", target=AssetSelection.all(), default_status=sensor_status, minimum_interval_seconds=interval_s,
    )
    registry = sensor(
        jobs=[generate_job, observe_models_job, observe_ensembles_job], minimum_interval_seconds=interval_s or 60, default_status=sensor_status,
        description="Keeps the model and ensemble partitions in step with the model registry file.",
    )(model_registry)
    analysis = sensor(
        job=observe_analysis_job, minimum_interval_seconds=interval_s or 60, default_status=sensor_status,
        description="Observes the analysis settings when their file changes; automation re-runs the metrics and the comparison.",
    )(analysis_file)
    verdicts = sensor(
        job=observe_adjudications_job, minimum_interval_seconds=interval_s or 60, default_status=sensor_status,
        description="Observes the reviewers' verdicts when a task's adjudicated labels change; automation re-runs what depends on them.",
    )(review_verdicts)
    weekly = ScheduleDefinition(
        name="weekly_reevaluation",
        job=observe_models_job,
        cron_schedule=cron,
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="Observes every model's weights; automation then re-runs what a new revision affects.",
    )
    return [reevaluation, registry, analysis, verdicts], [weekly]

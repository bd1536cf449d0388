"""Re-evaluation without anyone re-running a benchmark by hand.

- A new revision of a model's weights (observed by `model_weights`), new prompts, or a
  change of an asset's own code re-runs exactly the partitions it affects, and what
  follows them (declarative automation).
- The `model_registry` sensor keeps the `model` partitions in step with the registry: a new
  entry gets its partition and a run of its six tasks; a removed one loses its partition
  (its stored results stay on disk).
- The `ensemble_members` sensor re-runs an ensemble on a task when a member's parsed labels
  there are new (an ensemble reads them from storage: a declared dependency would be a cycle).
- The weekly schedule observes every model's weights; automation re-runs what changed.

Whether they start running and the schedule's cron are settings (`paths.py`), passed in
when the definitions are built.
"""

from dagster import (
    AssetKey,
    AssetRecordsFilter,
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
from medassets.core.registry import EnsembleModel, load_registry
from medassets.defs.jobs import generate_job, observe_models_job
from medassets.defs.partitions import model_and_task, model_partitions, model_range_tags, partition_key
from medassets.tasks import TASK_KEYS


def model_registry(context: SensorEvaluationContext) -> SensorResult:
    """Keeps the model partitions in step with the model registry file."""
    registry = load_registry(paths.registry_path())
    registered = list(registry)
    current = set(context.instance.get_dynamic_partitions(model_partitions.name))
    added = [name for name in registered if name not in current]
    removed = sorted(current - set(registered))
    requests = []
    if added:
        requests.append(model_partitions.build_add_request(added))
    if removed:
        requests.append(model_partitions.build_delete_request(removed))
        context.log.info(f"removed model partitions {removed}; their stored results stay readable")
    runs = []
    if added:  # so that automation sees the new models' revisions from now on
        runs.append(RunRequest(job_name=observe_models_job.name))
        prepared = context.instance.get_materialized_partitions(AssetKey("prompts"))
        # An ensemble of models added with it waits for their labels: `ensemble_members` runs it then.
        ready = [
            name for name in added
            if not isinstance(registry[name], EnsembleModel) or set(registry[name].members) <= current
        ]
        if prepared >= set(TASK_KEYS):
            runs += [RunRequest(job_name=generate_job.name, tags=model_range_tags(name)) for name in ready]
        else:
            context.log.info(f"added models {added}; their predictions wait for the prompts of every task (make run)")
    return SensorResult(run_requests=runs, dynamic_partitions_requests=requests)


def ensemble_members(context: SensorEvaluationContext) -> SensorResult:
    """Requests an ensemble's predictions on a task when a member's parsed labels there are
    newer than the cursor; automation then re-runs its labels, metrics and the comparison.
    The first evaluation only sets the cursor: what came before it is the starting point."""
    labels = AssetKey("parsed_labels")
    if context.cursor is None:
        latest = context.instance.fetch_materializations(labels, limit=1).records
        return SensorResult(cursor=str(latest[0].storage_id if latest else 0))
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=labels, after_storage_id=int(context.cursor)), limit=1000, ascending=True
    ).records
    if not records:
        return SensorResult()
    ensembles = {name: spec for name, spec in load_registry(paths.registry_path()).items() if isinstance(spec, EnsembleModel)}
    changed = {model_and_task(record.partition_key) for record in records}
    stale = sorted(
        {(ensemble, task) for member, task in changed for ensemble, spec in ensembles.items() if member in spec.members}
    )
    last = records[-1].storage_id
    runs = [
        RunRequest(job_name=generate_job.name, partition_key=partition_key(ensemble, task), run_key=f"{ensemble}|{task}|{last}")
        for ensemble, task in stale
    ]
    return SensorResult(run_requests=runs, cursor=str(last))


def automation(*, running: bool, cron: str) -> tuple[list[SensorDefinition], list[ScheduleDefinition]]:
    """The sensors and the schedule, started running or stopped."""
    sensor_status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED
    reevaluation = AutomationConditionSensorDefinition("reevaluation", target=AssetSelection.all(), default_status=sensor_status)
    registry = sensor(
        jobs=[generate_job, observe_models_job], minimum_interval_seconds=60, default_status=sensor_status,
        description="Keeps the model partitions in step with the model registry file.",
    )(model_registry)
    members = sensor(
        jobs=[generate_job], minimum_interval_seconds=30, default_status=sensor_status,
        description="Re-runs an ensemble on a task when a member's parsed labels there are new.",
    )(ensemble_members)
    weekly = ScheduleDefinition(
        name="weekly_reevaluation",
        job=observe_models_job,
        cron_schedule=cron,
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="Observes every model's weights; automation then re-runs what a new revision affects.",
    )
    return [reevaluation, registry, members], [weekly]

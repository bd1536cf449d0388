"""The one Definitions object of the medassets code location."""

from dagster import Definitions

from medassets import paths
from medassets.defs import accounting, adjudication, analysis, automation, checks, data, evaluation, generation
from medassets.defs.io import AssetStorage, ParquetIOManager
from medassets.defs.jobs import JOBS

storage = AssetStorage()  # MEDASSETS_HOME's assets folder, read when a step runs
sensors, schedules = automation.automation(
    running=paths.automation_on(), cron=paths.reevaluation_cron(), interval_s=paths.sensor_interval_s(),
)

defs = Definitions(
    assets=[
        data.raw_dataset, data.split, data.prompts,
        generation.embedded_model, generation.model_weights, generation.predictions,
        evaluation.parsed_labels, evaluation.metrics, accounting.reasoning_accounting, evaluation.ensemble_rules, evaluation.ensemble_labels,
        evaluation.ensemble_metrics, evaluation.comparison, evaluation.error_analysis,
        adjudication.adjudications, adjudication.adjudicated_gold, analysis.analysis_settings,
    ],
    asset_checks=[
        checks.raw_dataset_is_valid, checks.raw_dataset_positive_rate, checks.split_is_stratified,
        checks.predictions_are_complete, checks.predictions_from_one_engine, checks.few_invalid_answers, checks.ensemble_few_invalid_answers,
    ],
    jobs=JOBS,
    sensors=sensors,
    schedules=schedules,
    resources={"io_manager": ParquetIOManager(storage=storage), "storage": storage},
)

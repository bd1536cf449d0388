"""The one Definitions object of the medassets code location."""

from dagster import Definitions

from medassets.defs import automation, checks, data, evaluation, generation
from medassets.defs.io import ParquetIOManager
from medassets.defs.jobs import JOBS
from medassets.defs.resources import GenerationEngines

defs = Definitions(
    assets=[
        data.raw_dataset, data.split, data.prompts,
        generation.embedded_model, generation.model_weights, generation.predictions,
        evaluation.parsed_labels, evaluation.metrics, evaluation.comparison,
    ],
    asset_checks=[
        checks.raw_dataset_is_valid, checks.raw_dataset_positive_rate, checks.split_is_stratified,
        checks.predictions_are_complete, checks.few_invalid_answers,
    ],
    jobs=JOBS,
    sensors=[automation.reevaluation_sensor, automation.model_registry],
    schedules=[automation.weekly_reevaluation],
    resources={
        "io_manager": ParquetIOManager(),  # under MEDASSETS_HOME, read when a step runs
        "engines": GenerationEngines(),
    },
)

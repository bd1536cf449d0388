"""The one Definitions object of the medassets code location."""

from dagster import Definitions, define_asset_job

from medassets.defs import checks, data, evaluation, generation
from medassets.defs.io import ParquetIOManager
from medassets.defs.partitions import model_partitions, task_model_partitions, task_partitions
from medassets.defs.resources import GenerationEngines

prepare_data_job = define_asset_job(
    "prepare_data", selection=[data.raw_dataset, data.split, data.prompts], partitions_def=task_partitions
)
prepare_model_job = define_asset_job("prepare_model", selection=[generation.model_weights], partitions_def=model_partitions)
generate_job = define_asset_job("generate", selection=[generation.predictions], partitions_def=task_model_partitions)
evaluate_job = define_asset_job(
    "evaluate", selection=[evaluation.parsed_labels, evaluation.metrics], partitions_def=task_model_partitions
)
compare_job = define_asset_job("compare", selection=[evaluation.comparison])

defs = Definitions(
    assets=[
        data.raw_dataset, data.split, data.prompts,
        generation.model_weights, generation.predictions,
        evaluation.parsed_labels, evaluation.metrics, evaluation.comparison,
    ],
    asset_checks=[
        checks.raw_dataset_is_valid, checks.raw_dataset_positive_rate, checks.split_is_stratified,
        checks.predictions_are_complete, checks.few_invalid_answers,
    ],
    jobs=[prepare_data_job, prepare_model_job, generate_job, evaluate_job, compare_job],
    resources={
        "io_manager": ParquetIOManager(),
        "engines": GenerationEngines(),
    },
)

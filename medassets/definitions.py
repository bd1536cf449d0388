"""The one Definitions object of the medassets code location."""

import warnings

from dagster import Definitions, PreviewWarning, define_asset_job

from medassets import paths
from medassets.defs import checks, data, generation
from medassets.defs.io import ParquetIOManager
from medassets.defs.partitions import model_partitions, task_model_partitions, task_partitions
from medassets.defs.resources import GenerationEngines

# Partitioned asset checks are a preview feature of Dagster; we rely on them knowingly.
warnings.filterwarnings("ignore", category=PreviewWarning)

data_job = define_asset_job(
    "prepare_data", selection=[data.raw_dataset, data.split, data.prompts], partitions_def=task_partitions
)
weights_job = define_asset_job("prepare_model", selection=[generation.model_weights], partitions_def=model_partitions)
predictions_job = define_asset_job("generate", selection=[generation.predictions], partitions_def=task_model_partitions)

defs = Definitions(
    assets=[data.raw_dataset, data.split, data.prompts, generation.model_weights, generation.predictions],
    asset_checks=[checks.raw_dataset_is_valid, checks.raw_dataset_positive_rate, checks.split_is_stratified],
    jobs=[data_job, weights_job, predictions_job],
    resources={
        "io_manager": ParquetIOManager(base_dir=str(paths.assets_dir())),
        "engines": GenerationEngines(),
    },
)

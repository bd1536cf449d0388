"""The one Definitions object of the medassets code location."""

from __future__ import annotations

from dagster import Definitions

from medassets import paths
from medassets.defs import checks, data
from medassets.defs.io import ParquetIOManager

defs = Definitions(
    assets=[data.raw_dataset, data.split, data.prompts],
    asset_checks=[checks.raw_dataset_is_valid, checks.raw_dataset_positive_rate, checks.split_is_stratified],
    resources={"io_manager": ParquetIOManager(base_dir=str(paths.assets_dir()))},
)

"""Parquet through pyarrow, one file per partition: <base>/<asset>/<model>/<task>.parquet.

A step that covers several partitions (a single-run backfill) returns, and receives, a
dict from partition key to DataFrame.
"""

from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, MultiPartitionsDefinition, OutputContext

from medassets import paths


def stored_model_task_frames(base_dir: Path, asset_name: str, models: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every stored (model, task) partition of a per-(task, model) asset, for the given models."""
    return {
        (path.parent.name, path.stem): pd.read_parquet(path, engine="pyarrow")
        for model in models
        for path in sorted(Path(base_dir, asset_name, model).glob("*.parquet"))
    }


class ParquetIOManager(ConfigurableIOManager):
    # Empty: MEDASSETS_HOME's assets folder, read when a step runs (as the comparison asset does).
    base_dir: str = ""

    def _path(self, context: InputContext | OutputContext, partition_key: str | None) -> Path:
        folder = Path(self.base_dir or paths.assets_dir(), *context.asset_key.path)
        if partition_key is None:
            return folder.with_suffix(".parquet")
        partitions_def = context.asset_partitions_def
        if isinstance(partitions_def, MultiPartitionsDefinition):
            dimensions = partitions_def.get_partition_key_from_str(partition_key).keys_by_dimension
            parts = [dimensions[name] for name in sorted(dimensions)]  # model, then task
        else:
            parts = [partition_key]
        return folder.joinpath(*parts).with_suffix(".parquet")

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | dict[str, pd.DataFrame]) -> None:
        if not context.has_asset_partitions:
            frames = {None: obj}
        elif isinstance(obj, dict):
            frames = obj
        else:
            (key,) = context.asset_partition_keys
            frames = {key: obj}
        for key, frame in frames.items():
            path = self._path(context, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, engine="pyarrow", index=False)

    def load_input(self, context: InputContext) -> pd.DataFrame | dict[str, pd.DataFrame]:
        if not context.has_asset_partitions:
            return pd.read_parquet(self._path(context, None), engine="pyarrow")
        keys = list(context.asset_partition_keys)
        frames = {key: pd.read_parquet(self._path(context, key), engine="pyarrow") for key in keys}
        return frames[keys[0]] if len(keys) == 1 else frames

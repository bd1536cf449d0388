"""Asset storage: Parquet through pyarrow, one file per partition, at
<base>/<asset>/<model>/<task>.parquet (or <base>/<asset>/<task>.parquet).

`AssetStorage` is the one place that knows where asset files live: the IO manager writes and
reads through it, and so does any asset that reads other assets' partitions itself (the
comparison). A step that covers several partitions (a single-run backfill) returns, and
receives, a dict from partition key to DataFrame.
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, MultiPartitionsDefinition, OutputContext
from pydantic import Field

from medassets import paths


class AssetStorage(ConfigurableResource):
    base_dir: str = Field("", description="Folder of the asset files; empty: MEDASSETS_HOME's assets folder, read when a step runs.")

    def path(self, asset: str, parts: Sequence[str]) -> Path:
        folder = Path(self.base_dir or paths.assets_dir(), asset)
        return folder.joinpath(*parts).with_suffix(".parquet") if parts else folder.with_suffix(".parquet")

    def write(self, asset: str, parts: Sequence[str], frame: pd.DataFrame) -> None:
        path = self.path(asset, parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, engine="pyarrow", index=False)

    def read(self, asset: str, parts: Sequence[str]) -> pd.DataFrame:
        return pd.read_parquet(self.path(asset, parts), engine="pyarrow")

    def read_model_task_frames(self, asset: str, models: Sequence[str]) -> dict[tuple[str, str], pd.DataFrame]:
        """Every stored (model, task) partition of a per-(task, model) asset, for the given models."""
        return {
            (model, path.stem): pd.read_parquet(path, engine="pyarrow")
            for model in models
            for path in sorted(self.path(asset, [model]).with_suffix("").glob("*.parquet"))
        }


def frames_by_partition(loaded: pd.DataFrame | dict[str, pd.DataFrame], keys: Sequence[str]) -> dict[str, pd.DataFrame]:
    """A managed input as {upstream partition key: frame}: the IO manager gives a plain frame
    when the input covers one partition (`keys` holds it)."""
    return loaded if isinstance(loaded, dict) else {keys[0]: loaded}


class ParquetIOManager(ConfigurableIOManager):
    storage: AssetStorage

    def _parts(self, context: InputContext | OutputContext, partition_key: str | None) -> list[str]:
        if partition_key is None:
            return []
        partitions_def = context.asset_partitions_def
        if isinstance(partitions_def, MultiPartitionsDefinition):
            dimensions = partitions_def.get_partition_key_from_str(partition_key).keys_by_dimension
            return [dimensions[name] for name in sorted(dimensions)]  # model, then task
        return [partition_key]

    def _asset(self, context: InputContext | OutputContext) -> str:
        return "/".join(context.asset_key.path)

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | dict[str, pd.DataFrame]) -> None:
        if not context.has_asset_partitions:
            frames = {None: obj}
        else:
            frames = frames_by_partition(obj, list(context.asset_partition_keys))
        for key, frame in frames.items():
            self.storage.write(self._asset(context), self._parts(context, key), frame)

    def load_input(self, context: InputContext) -> pd.DataFrame | dict[str, pd.DataFrame]:
        if not context.has_asset_partitions:
            return self.storage.read(self._asset(context), [])
        keys = list(context.asset_partition_keys)
        frames = {key: self.storage.read(self._asset(context), self._parts(context, key)) for key in keys}
        return frames[keys[0]] if len(keys) == 1 else frames

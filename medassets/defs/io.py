"""Asset storage: Parquet through pyarrow, one file per partition, at
<root>/assets/<asset>/<model>/<task>.parquet (or <root>/assets/<asset>/<task>.parquet), and the
comparison's reports at <root>/reports/. The root is any fsspec URL: a local folder by default,
`s3://bucket/prefix` or `gs://...` for a team whose runs execute on machines that share no disk.

`AssetStorage` is the one place that knows where files live: the IO manager writes and reads
through it, and so does any asset that reads other assets' partitions itself (the comparison).
A step that covers several partitions (a single-run backfill) returns, and receives, a dict
from partition key to DataFrame: one IO manager serves both. An input whose metadata sets
`allow_missing_partitions` is always such a dict, of the upstream partitions stored so far.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import uuid
from collections.abc import Sequence

import fsspec
import pandas as pd
import pyarrow as pa
from dagster import ConfigurableIOManager, ConfigurableResource, InitResourceContext, InputContext, MultiPartitionsDefinition, OutputContext
from fsspec.implementations.local import LocalFileSystem
from pydantic import Field

from medassets import paths


class StorageError(RuntimeError):
    """Asset storage that cannot be used as configured."""


class AssetStorage(ConfigurableResource):
    root_url: str = Field(
        "", description="fsspec URL of the folder holding assets/ and reports/ (a local folder, s3://bucket/prefix, "
        "gs://...); empty: MEDASSETS_STORAGE_URL, else MEDASSETS_HOME, read when a step runs.",
    )

    def _url(self) -> str:
        return self.root_url or paths.storage_url()

    def _root(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self._url())
        return fs, root.rstrip("/")

    def _file(self, relative: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem, and the path on it of a file under the root."""
        fs, root = self._root()
        return fs, f"{root}/{relative}"

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.check()

    def check(self) -> None:
        """Fails, naming the setting and what to do, unless the root can be written."""
        setting = "AssetStorage.root_url" if self.root_url else "MEDASSETS_STORAGE_URL"
        fs, root = self._root()
        if isinstance(fs, LocalFileSystem):
            fs.makedirs(root, exist_ok=True)
            return
        bucket = root.split("/")[0]
        try:
            fs.ls(bucket)
        except FileNotFoundError:
            raise StorageError(
                f"{setting}={self._url()}: the bucket {bucket!r} does not exist: create it, or point the setting at one that does."
            ) from None
        except Exception as exc:  # each filesystem raises its own errors for credentials and networks
            raise StorageError(
                f"{setting}={self._url()}: cannot reach the asset storage ({type(exc).__name__}: {exc}). Check the URL and "
                "the object store's credentials and endpoint (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                "AWS_ENDPOINT_URL)."
            ) from exc

    def url(self, relative: str) -> str:
        """Where a file under the root is (a local path, or a URL)."""
        fs, path = self._file(relative)
        return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)

    def _asset_path(self, asset: str, parts: Sequence[str]) -> str:
        return "/".join(["assets", asset, *parts]) + ".parquet" if parts else f"assets/{asset}.parquet"

    def path(self, asset: str, parts: Sequence[str]) -> str:
        """Where an asset partition's file is (a local path, or a URL)."""
        return self.url(self._asset_path(asset, parts))

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Writes a file under the root whole or not at all: a local file is written under a
        temporary name, synced and renamed into place, so a killed run leaves either the
        previous file or the new one, never part of one."""
        fs, path = self._file(relative)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if isinstance(fs, LocalFileSystem):
            _write_local_file(path, data)
        else:  # an object store's put is atomic
            fs.pipe_file(path, data)
        return self.url(relative)

    def read_bytes(self, relative: str) -> bytes:
        fs, path = self._file(relative)
        return fs.cat_file(path)

    def write(self, asset: str, parts: Sequence[str], frame: pd.DataFrame) -> None:
        self.write_bytes(self._asset_path(asset, parts), frame.to_parquet(engine="pyarrow", index=False))

    def read(self, asset: str, parts: Sequence[str]) -> pd.DataFrame:
        data = self.read_bytes(self._asset_path(asset, parts))
        try:
            return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        except (pa.ArrowException, ValueError, OSError) as exc:  # truncated, overwritten, not Parquet
            partition = f"partition {'|'.join(parts)!r} of " if parts else ""
            raise StorageError(
                f"{self.path(asset, parts)}: not a readable Parquet file ({exc}). Re-materialize {partition}"
                f"the asset {asset!r}; the new file replaces this one."
            ) from exc

    def exists(self, asset: str, parts: Sequence[str]) -> bool:
        fs, path = self._file(self._asset_path(asset, parts))
        return fs.isfile(path)

    def read_model_task_frames(self, asset: str, models: Sequence[str]) -> dict[tuple[str, str], pd.DataFrame]:
        """Every stored (model, task) partition of a per-(task, model) asset, for the given models."""
        found = {}
        for model in models:
            fs, pattern = self._file(f"assets/{asset}/{model}/*.parquet")
            for path in sorted(fs.glob(pattern)):
                task = path.rsplit("/", 1)[1].removesuffix(".parquet")
                found[(model, task)] = self.read(asset, [model, task])
        return found


_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up", errno.EFBIG: "the file size limit is reached"}


def _write_local_file(path: str, data: bytes) -> None:
    """`data` at `path`, renamed into place once written and synced; a full disk (or quota, or
    file-size limit) is a StorageError naming the file, with nothing left behind."""
    staging = f"{path}.partial-{uuid.uuid4().hex}"  # never matches the *.parquet a reader looks for
    try:
        with open(staging, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
        if exc.errno in _FULL:
            raise StorageError(
                f"{path}: cannot write {len(data):,} bytes: {_FULL[exc.errno]} ({exc.strerror}). Free space (or raise the "
                "limit) and materialize the partition again; the previous file, if any, is unchanged."
            ) from exc
        raise


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
        asset, keys = self._asset(context), list(context.asset_partition_keys)
        if context.definition_metadata.get("allow_missing_partitions"):
            stored = [key for key in keys if self.storage.exists(asset, self._parts(context, key))]
            return {key: self.storage.read(asset, self._parts(context, key)) for key in stored}
        frames = {key: self.storage.read(asset, self._parts(context, key)) for key in keys}
        return frames[keys[0]] if len(keys) == 1 else frames

"""Asset storage is one seam: moving its base moves every asset file, and the comparison,
which reads other assets' partitions itself, follows it."""

import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from medassets.definitions import defs
from medassets.defs.io import AssetStorage, ParquetIOManager, StorageError
from medassets.defs.partitions import partition_key

TASK = "breast_cancer"
MODEL = "tfidf-logreg"


def test_a_moved_base_moves_every_asset_file_and_the_comparison_follows(tmp_path, monkeypatch):
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  - name: {MODEL}\n    backend: baseline\n")
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.delenv("MEDASSETS_DATASETS", raising=False)
    storage = AssetStorage(root_url=str(tmp_path / "moved"))
    moved = Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
        resources={"io_manager": ParquetIOManager(storage=storage), "storage": storage},
    )
    key = partition_key(MODEL, TASK)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", [MODEL])
        for job, partition in [("prepare_data", TASK), ("generate", key), ("evaluate", key), ("compare", None)]:
            result = moved.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition)
            assert result.success, job
    assert not (tmp_path / "home" / "assets").exists()
    for asset, parts in [("prompts", [TASK]), ("predictions", [MODEL, TASK]), ("metrics", [MODEL, TASK]), ("comparison", [])]:
        assert storage.exists(asset, parts), asset
    metadata = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert metadata["evaluated_partitions"].value == "1 of 6"
    table = storage.read("comparison", [])
    f1 = storage.read("metrics", [MODEL, TASK])["f1"].iloc[0]
    assert table.loc[0, f"F1 {MODEL}"].startswith(f"{f1:.2f} (")


def test_storage_paths_and_one_models_partitions(tmp_path):
    storage = AssetStorage(root_url=str(tmp_path))
    assert storage.path("metrics", ["m", "t"]) == f"{tmp_path}/assets/metrics/m/t.parquet"
    assert storage.path("comparison", []) == f"{tmp_path}/assets/comparison.parquet"
    frame = pd.DataFrame({"x": [1]})
    storage.write("metrics", ["m", "t"], frame)
    storage.write("metrics", ["other", "t"], frame)
    assert list(storage.read_model_task_frames("metrics", ["m"])) == [("m", "t")]


def test_a_truncated_partition_file_names_the_file_and_the_partition_to_rematerialize(tmp_path):
    storage = AssetStorage(root_url=str(tmp_path))
    storage.write("predictions", [MODEL, TASK], pd.DataFrame({"id": [f"r{i}" for i in range(100)], "answer": ["yes"] * 100}))
    path = storage.path("predictions", [MODEL, TASK])
    with open(path, "r+b") as handle:  # a write cut short, as by a full disk or a copy stopped halfway
        handle.truncate(handle.seek(0, 2) // 2)
    with pytest.raises(StorageError) as info:
        storage.read("predictions", [MODEL, TASK])
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable Parquet file")
    assert f"Re-materialize partition '{partition_key(MODEL, TASK)}' of the asset 'predictions'" in message

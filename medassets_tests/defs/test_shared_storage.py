"""Asset files and reports on shared storage: a real S3-API server (moto's standalone server)
on 127.0.0.1, reached through s3fs as a team's object store would be. Every asset of a
pipeline run is written there and read back from there; bad settings fail clearly, before
anything is written."""

import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance
from support import free_port, server_process

from medassets.definitions import defs
from medassets.defs.io import AssetStorage, StorageError
from medassets.defs.partitions import partition_key
from medassets.tasks import TASK_KEYS

pytestmark = pytest.mark.slow  # moto's S3-API server

MODEL = "tfidf-logreg"
BUCKET = "medassets-team"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3-API server on 127.0.0.1 (support.server_process)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    with server_process([str(moto), "-H", "127.0.0.1", "-p", str(port)], log, f"{endpoint}/moto-api/", 30, "moto_server"):
        yield endpoint


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """The object store's standard settings, a bucket, and MEDASSETS_* pointing at it."""
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "eu-west-1",
                        "AWS_ENDPOINT_URL": s3_endpoint, "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    filesystem = s3fs.S3FileSystem(client_kwargs={"region_name": "eu-west-1"})
    if not filesystem.exists(BUCKET):
        filesystem.mkdir(BUCKET)
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  - name: {MODEL}\n    backend: baseline\n")
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.setenv("MEDASSETS_STORAGE_URL", f"s3://{BUCKET}/team")
    monkeypatch.delenv("MEDASSETS_DATASETS", raising=False)
    return filesystem


def _run(job: str, instance, partition: str | None = None):
    return defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)


def test_a_pipeline_writes_and_reads_every_asset_on_s3(s3, tmp_path):
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("model", [MODEL])
        for task in TASK_KEYS:
            assert _run("prepare_data", instance, task).success
            assert _run("generate", instance, partition_key(MODEL, task)).success  # reads split and prompts from S3
            assert _run("evaluate", instance, partition_key(MODEL, task)).success
        assert _run("compare", instance).success
    stored = {path.removeprefix(f"{BUCKET}/team/") for path in s3.find(f"{BUCKET}/team")}
    for task in TASK_KEYS:
        assert {f"assets/{asset}/{task}.parquet" for asset in ("raw_dataset", "split", "prompts")} <= stored
        assert {f"assets/{asset}/{MODEL}/{task}.parquet" for asset in ("predictions", "parsed_labels", "metrics")} <= stored
    assert {"assets/comparison.parquet", "reports/table3.csv", "reports/f1_differences.parquet", "reports/f1_forest.png"} <= stored
    assert not (tmp_path / "home" / "assets").exists() and not (tmp_path / "home" / "reports").exists()
    table = AssetStorage().read("comparison", [])
    assert len(table) == len(TASK_KEYS)


def test_a_missing_bucket_fails_the_run_before_it_writes(s3, monkeypatch):
    monkeypatch.setenv("MEDASSETS_STORAGE_URL", "s3://no-such-bucket/team")
    with pytest.raises(StorageError, match=r"MEDASSETS_STORAGE_URL=s3://no-such-bucket/team: the bucket 'no-such-bucket' does not exist: create it"):
        AssetStorage().check()
    with DagsterInstance.ephemeral() as instance:
        result = _run("prepare_data", instance, TASK_KEYS[0])
    assert not result.success
    assert "the bucket 'no-such-bucket' does not exist: create it" in str(result.all_events)
    assert not s3.exists("no-such-bucket")


def test_missing_credentials_name_the_setting(s3, monkeypatch):
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(StorageError, match=r"MEDASSETS_STORAGE_URL=s3://medassets-team/team: cannot reach the asset storage .*AWS_ACCESS_KEY_ID"):
        AssetStorage().check()

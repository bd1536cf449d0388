"""The team instance (deploy/dagster.yaml) on a real PostgreSQL server: the whole pipeline
(data, the baseline, the embedded model on real vLLM, evaluation, comparison) runs on it, and
its run and event records, and the response cache, are read back from PostgreSQL."""

import shutil
import subprocess
import sys

import psycopg2
import pytest
from conftest import REPO, small_datasets
from dagster_runs import generate_range

from medassets.core.cache import CacheError, open_response_cache
from medassets.defs.partitions import partition_key
from medassets.tasks import TASK_KEYS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

LLM, BASELINE = "smollm2-135m", "tfidf-logreg"
REGISTRY = f"""
models:
  - name: {LLM}
    source: {{embedded: {EMBEDDED_MODEL_NAME}}}
    sampling: {{max_tokens: 8}}
  - name: {BASELINE}
    backend: baseline
"""


@pytest.fixture(scope="module")
def team(make_workspace, postgres_url, tmp_path_factory):
    datasets = small_datasets(tmp_path_factory.mktemp("small-data"))
    workspace = make_workspace(REGISTRY, datasets=datasets, extra_env={"MEDASSETS_POSTGRES_URL": postgres_url})
    (workspace.root / "instance").mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", workspace.root / "instance" / "dagster.yaml")
    runs = [f"prepare_data:{task}" for task in TASK_KEYS] + ["prepare_embedded_model", "observe_models"]
    runs += [generate_range(LLM), generate_range(BASELINE)]
    runs += [f"evaluate:{partition_key(model, task)}" for model in (LLM, BASELINE) for task in TASK_KEYS]
    runs += ["compare"]
    reports = workspace.run(*runs, timeout=900)
    database = psycopg2.connect(postgres_url)
    database.autocommit = True
    yield workspace, reports, database
    database.close()


def _query(database, sql: str, *params) -> list[tuple]:
    with database.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_every_run_is_recorded_in_postgres(team):
    workspace, reports, database = team
    statuses = dict(_query(database, "SELECT run_id, status FROM runs"))
    assert {report["run_id"] for report in reports} <= set(statuses)
    assert all(statuses[report["run_id"]] == "SUCCESS" for report in reports)
    # no SQLite run or event storage beside the instance's config
    assert not list((workspace.root / "instance").rglob("*.db"))


def test_materializations_are_read_back_from_postgres(team):
    _, _, database = team
    rows = _query(
        database,
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    materialized = {(key.strip('[]"'), partition) for key, partition in rows}
    for model in (LLM, BASELINE):
        for task in TASK_KEYS:
            for asset in ("predictions", "parsed_labels", "metrics"):
                assert (asset, partition_key(model, task)) in materialized
    assert ("comparison", None) in materialized


def test_the_response_cache_is_a_postgres_table(team):
    workspace, reports, database = team
    generated = next(r for r in reports if r["job"] == "generate" and LLM in r["keys"])
    metadata = generated["materializations"]["predictions"][partition_key(LLM, TASK_KEYS[0])]
    assert metadata["batch_prompts"] == metadata["batch_cache_misses"] > 0
    (count,) = _query(database, "SELECT count(*) FROM responses")[0]
    assert count == metadata["batch_prompts"]
    assert not workspace.cache_file.exists()  # not the SQLite file


def test_an_unreachable_postgres_url_names_the_setting():
    with pytest.raises(CacheError, match=r"postgresql://medassets:\*\*\*@127.0.0.1:1/x \(MEDASSETS_POSTGRES_URL\)"):
        open_response_cache("postgresql://medassets:secret@127.0.0.1:1/x", None)


WRITER = """
import sys
from medassets.core.cache import open_response_cache
from medassets.core.answers import Generation
cache = open_response_cache(sys.argv[1], None)
for i in range(300):
    cache.put(f"{sys.argv[2]}-{i}", Generation(f"answer {i}", None, "stop", 1, 1))
    cache.put("shared", Generation(sys.argv[2], None, "stop", 1, 1))
cache.close()
"""


def test_two_processes_writing_at_once_lose_nothing(postgres_url):
    """Two writers, as two generation runs of different models, put their answers at once."""
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, f"writer{n}"]) for n in range(2)]
    assert [writer.wait(120) for writer in writers] == [0, 0]
    cache = open_response_cache(postgres_url, None)
    try:
        keys = [f"writer{n}-{i}" for n in range(2) for i in range(300)]
        found = cache.get_many(keys + ["shared"])
        assert len(found) == 601
        assert all(found[f"writer{n}-{i}"].text == f"answer {i}" for n in range(2) for i in range(300))
    finally:
        cache.close()
    db = psycopg2.connect(postgres_url)
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT writes, count(*) FROM responses WHERE key LIKE 'writer%' OR key = 'shared' GROUP BY writes")
            assert dict(cursor.fetchall()) == {1: 600, 600: 1}  # "shared": 300 puts by each writer, none lost
    finally:
        db.close()

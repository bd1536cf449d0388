"""The `generate` job on a real vLLM engine, over a range of two tasks of the embedded model:
a run killed midway, its resumption, and a re-run served by the response cache; and what of
an entry's sampling reaches vLLM's `SamplingParams`.

Slow: the two runs that generate start vLLM (30-50 s each on 2 cores). The fixtures run in
order, sharing one workspace: killed run -> resumed run -> cached re-run.
"""

import json
import re
import time
from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import engine_events, engine_probe_env

from medassets.core.prompts import variant_prompts
from medassets.engines.vllm_offline import vllm_release

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
TASKS = ("breast_cancer", "medication_regimen_change")
GENERATE_RANGE = f"generate:{MODEL}|{TASKS[0]}..{MODEL}|{TASKS[-1]}"
REGISTRY = f"""
models:
  - name: {MODEL}
    backend: vllm
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 16}}
"""
ENGINE_START_LINE = "Initializing a V1 LLM engine"  # vLLM logs it once per engine


@pytest.fixture(scope="module")
def engine_log(tmp_path_factory):
    return tmp_path_factory.mktemp("engine") / "events.log"


@pytest.fixture(scope="module")
def workspace(make_workspace, engine_log):
    workspace = make_workspace(REGISTRY, extra_env=engine_probe_env(engine_log))
    workspace.run(*(f"prepare_data:{task}" for task in TASKS), "prepare_embedded_model", "observe_models")
    return workspace


def prompts(workspace, task: str) -> pd.DataFrame:
    return variant_prompts(pd.read_parquet(workspace.asset_file("prompts", task)))


def predictions(workspace, task: str) -> pd.DataFrame:
    return pd.read_parquet(workspace.asset_file("predictions", MODEL, task))


def predictions_metadata(report: dict) -> dict[str, dict]:
    metadata = report["materializations"]["predictions"]
    assert sorted(metadata) == sorted(f"{MODEL}|{task}" for task in TASKS)
    return metadata


@pytest.fixture(scope="module")
def killed(workspace, engine_log):
    """A generate run executed as the UI executes it (a process per step), killed with its
    whole process group (SIGKILL) once the engine has cached 5% of the answers."""
    total = sum(len(prompts(workspace, task)) for task in TASKS)
    job = workspace.start(GENERATE_RANGE, multiprocess=True)
    deadline = time.monotonic() + 600
    while len(workspace.cached_answers()) < total // 20:
        assert job.process.poll() is None, f"the run ended before it cached an answer:\n{job.output[-3000:]}"
        assert time.monotonic() < deadline, "no answer cached within 10 minutes"
        time.sleep(0.05)
    job.kill()
    return SimpleNamespace(
        total=total, cached=workspace.cached_answers(), writes=workspace.cache_writes(),
        leftovers=job.leftovers(), engine_events=len(engine_events(engine_log)),
    )


@pytest.fixture(scope="module")
def resumed(workspace, killed, engine_log):
    """The same range run again, in process as `make run` runs it."""
    job = workspace.start(GENERATE_RANGE)
    (report,) = job.wait(timeout=900)
    frames = {task: predictions(workspace, task) for task in TASKS}
    events = Counter(engine_events(engine_log)[killed.engine_events :])
    return SimpleNamespace(job=job, report=report, leftovers=job.leftovers(), predictions=frames, engine_events=events)


def test_killed_run_leaves_no_process_and_keeps_the_answers_it_finished(killed):
    assert 0 < len(killed.cached) < killed.total, "the kill was meant to land midway"
    assert killed.leftovers == []


def test_resumed_run_generates_only_the_missing_answers_with_one_engine(workspace, killed, resumed):
    assert resumed.report["success"], resumed.report["errors"]
    for metadata in predictions_metadata(resumed.report).values():
        # One step for both tasks, one batch through one engine.
        assert metadata["batch_tasks"] == 2
        assert metadata["batch_prompts"] == killed.total
        assert metadata["batch_cache_hits"] == len(killed.cached)
        assert metadata["batch_cache_misses"] == killed.total - len(killed.cached)
    assert resumed.job.output.count(ENGINE_START_LINE) == 1
    # What vLLM itself received and finished (engine_probe), not what medassets counted.
    missing = killed.total - len(killed.cached)
    assert resumed.engine_events == {"received": missing, "finished": missing}

    # One answer per prompt, in the prompts' order.
    for task in TASKS:
        frame, expected = resumed.predictions[task], prompts(workspace, task)
        assert frame["id"].tolist() == expected["id"].tolist()
        assert frame["prompt_hash"].tolist() == expected["prompt_hash"].tolist()
        assert frame["text"].notna().all()

    # The answers cached before the kill were reused as they were, never regenerated.
    rows = workspace.cached_answers()
    assert len(rows) == killed.total
    assert {key: rows[key] for key in killed.cached} == killed.cached
    # Greedy answers generated again would be identical: the write time and count show they were not.
    writes = workspace.cache_writes()
    assert {key: writes[key] for key in killed.cached} == {key: killed.writes[key] for key in killed.cached}
    assert {count for _, count in writes.values()} == {1}
    fields = ["text", "finish_reason", "prompt_tokens", "completion_tokens"]
    produced = Counter(
        row for frame in resumed.predictions.values() for row in frame[fields].itertuples(index=False, name=None)
    )
    kept = Counter(tuple(json.loads(value)[field] for field in fields) for value in killed.cached.values())
    assert not kept - produced


def test_resumed_run_ends_soon_after_the_last_answer_and_leaves_no_process(resumed):
    finished = [log["time"] for log in resumed.report["logs"] if re.match(r"generated (\d+)/\1 in ", log["message"])]
    assert finished, "no 'generated N/N' progress message"
    # A clean end takes seconds; an engine left running holds the run for minutes (9 seen). The
    # bound leaves a busy machine a minute of margin and still tells the two apart.
    assert resumed.job.exited_at - finished[-1] < 60
    assert resumed.leftovers == []


def test_rerun_is_served_by_the_cache_without_an_engine(workspace, killed, resumed, engine_log):
    events_before = len(engine_events(engine_log))
    job = workspace.start(GENERATE_RANGE)
    (report,) = job.wait(timeout=300)
    assert report["success"], report["errors"]
    for metadata in predictions_metadata(report).values():
        assert metadata["batch_cache_hits"] == killed.total
        assert metadata["batch_cache_misses"] == 0
        assert "vllm_version" not in metadata  # engine details are recorded only when one was opened
        assert list(metadata["engines"]) == [vllm_release()]  # the cached answers name the engine that gave them
    assert ENGINE_START_LINE not in job.output
    assert len(engine_events(engine_log)) == events_before
    for task in TASKS:
        pd.testing.assert_frame_equal(predictions(workspace, task), resumed.predictions[task])
    assert job.leftovers() == []


def test_every_sampling_field_reaches_vllms_sampling_params():
    """Each field of `Sampling` is given to vLLM's own `SamplingParams` (a field added to
    `Sampling` fails here until it is passed on), and each item's seed is the request's."""
    from medassets.core.registry import Sampling
    from medassets.engines.vllm_offline import VLLMEngine

    sampling = Sampling(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05, max_tokens=9, seed=3, stop=("\n",))
    params = VLLMEngine._sampling_params(sampling, ("yes", "no"), 123)
    given = {name: getattr(params, name) for name in Sampling.model_fields}
    assert given == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.05, "max_tokens": 9, "seed": 123, "stop": ["\n"]}
    assert params.structured_outputs.choice == ["yes", "no"]

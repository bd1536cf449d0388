"""The `openai` backend when its server dies mid-run: vLLM's API server on 127.0.0.1, killed
with SIGKILL (its whole process group) while the `generate` job is sending it prompts. The run
must fail saying so; once the server is back, the next run must send it only the prompts whose
answers were not cached, which the server itself counts (its /metrics counter and its access
log), and leave the cached rows as they were.

Slow: the server starts twice (about a minute each on 2 cores).
"""

import os
import re
import signal
import time

import httpx
import pandas as pd
import pytest
from dagster import DagsterEventType, DagsterInstance

from medassets.core.prompts import variant_prompts
from medassets.weights.embedded import EMBEDDED_MODEL_NAME
from support import free_port, vllm_server

pytestmark = pytest.mark.slow

SERVED = "smollm2-135m"
MODEL = "smollm2-135m-server"
TASK = "breast_cancer"  # the full sample: 100 test prompts
KILLED_CONCURRENCY = 2  # requests in flight in the run the kill interrupts


def server(models_dir, port: int, log):
    """vLLM's API server on the port, as a context manager."""
    return vllm_server(models_dir / EMBEDDED_MODEL_NAME, SERVED, port, log)


def completed_requests(port: int) -> int:
    """Requests the server finished, by its own Prometheus counter (all finish reasons)."""
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:request_success_total{")))


def step_failed_at(workspace, run_id: str) -> float:
    """When the run's step failed, by its event log (the run process's own teardown excluded)."""
    with DagsterInstance.from_config(str(workspace.root / "instance")) as instance:
        (failure,) = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    return failure.timestamp


def registry(port: int, max_concurrency: int) -> str:
    return f"""
models:
  - name: {MODEL}
    backend: openai
    source: {{embedded: {EMBEDDED_MODEL_NAME}}}
    sampling: {{max_tokens: 16}}
    server: {{base_url: "http://127.0.0.1:{port}/v1", served_model: {SERVED}, max_concurrency: {max_concurrency}, max_retries: 1}}
"""


@pytest.fixture(scope="module")
def interrupted(models_dir, make_workspace, tmp_path_factory):
    port = free_port()
    logs = tmp_path_factory.mktemp("servers")
    workspace = make_workspace(registry(port, KILLED_CONCURRENCY))
    workspace.run(f"prepare_data:{TASK}")
    total = len(variant_prompts(pd.read_parquet(workspace.asset_file("prompts", TASK))))
    generate = f"generate:{MODEL}|{TASK}"

    with server(models_dir, port, logs / "first.log") as first:
        job = workspace.start(generate)
        deadline = time.monotonic() + 300
        while len(workspace.cached_answers()) < total // 10:
            assert job.process.poll() is None, f"the run ended before the kill:\n{job.output[-3000:]}"
            assert time.monotonic() < deadline, "too few answers within 5 minutes"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time()
        (failed,) = job.wait(timeout=300)
    failed_after_s = step_failed_at(workspace, failed["run_id"]) - killed_at
    cached = workspace.cached_answers()
    cached_writes = workspace.cache_writes()

    # How many requests are in flight cannot change an answer: the next run may send more at
    # once (and be done sooner) and still find the cached ones.
    workspace.registry.write_text(registry(port, max_concurrency=8))
    second_log = logs / "second.log"
    with server(models_dir, port, second_log):
        (resumed,) = workspace.run(generate)
        served = completed_requests(port)
    return dict(total=total, failed=failed, failed_after_s=failed_after_s, cached=cached, cached_writes=cached_writes,
                resumed=resumed, served=served, second_log=second_log.read_text(errors="replace"), workspace=workspace, port=port)


def test_a_killed_server_fails_the_run_saying_where_and_why(interrupted):
    failed = interrupted["failed"]
    assert not failed["success"]
    error = "\n".join(failed["errors"])
    port = interrupted["port"]
    message = re.search(rf"ServerError: http://127\.0\.0\.1:{port}/v1/chat/completions: gave up after 2 attempts; "
                        r"last: (ConnectError|RemoteProtocolError|ReadError).*", error)
    assert message, error[-3000:]
    assert 0 < len(interrupted["cached"]) < interrupted["total"], "the kill was meant to land midway"
    # Only the requests in flight retry (once, after 0.5-0.75 s): the step fails about a second
    # after the kill. Had the queued prompts been sent, each would wait at least 0.5 s before its
    # retry, two at a time: no sooner than missing / 2 * 0.5 s (over 20 s here). Half of that
    # floor is the bound, the other half a busy machine's margin.
    missing = interrupted["total"] - len(interrupted["cached"])
    assert interrupted["failed_after_s"] < missing / KILLED_CONCURRENCY * 0.5 / 2
    print("\n" + message.group(0))
    print(f"\n{len(interrupted['cached'])} of {interrupted['total']} answers cached at the kill; "
          f"the run failed {interrupted['failed_after_s']:.1f} s after it")


def test_the_next_run_sends_the_server_only_the_missing_prompts(interrupted):
    missing = interrupted["total"] - len(interrupted["cached"])
    # What the server itself saw, not medassets' counters.
    assert interrupted["served"] == missing
    posts = re.findall(r'"POST /v1/chat/completions HTTP/1\.1" 200', interrupted["second_log"])
    assert len(posts) == missing
    metadata = interrupted["resumed"]["materializations"]["predictions"][f"{MODEL}|{TASK}"]
    assert (metadata["batch_cache_hits"], metadata["batch_cache_misses"]) == (len(interrupted["cached"]), missing)
    print(f"\nthe restarted server completed {interrupted['served']} requests for {missing} missing answers")


def test_cached_answers_were_kept_as_they_were(interrupted):
    workspace = interrupted["workspace"]
    rows = workspace.cached_answers()
    assert len(rows) == interrupted["total"]
    assert {key: rows[key] for key in interrupted["cached"]} == interrupted["cached"]
    # An answer generated again would be identical: its write time and count show it was not.
    writes = workspace.cache_writes()
    assert {key: writes[key] for key in interrupted["cached"]} == {key: interrupted["cached_writes"][key] for key in interrupted["cached"]}
    assert {count for _, count in writes.values()} == {1}
    predictions = pd.read_parquet(workspace.asset_file("predictions", MODEL, TASK))
    prompts = variant_prompts(pd.read_parquet(workspace.asset_file("prompts", TASK)))
    assert predictions["id"].tolist() == prompts["id"].tolist() and predictions["text"].notna().all()

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
import sqlite3
import time

import httpx
import pandas as pd
import pytest

from medassets.core.prompts import variant_prompts
from medassets.weights.embedded import EMBEDDED_MODEL_NAME
from support import free_port, vllm_server

pytestmark = pytest.mark.slow

SERVED = "smollm2-135m"
MODEL = "smollm2-135m-server"
TASK = "breast_cancer"  # the full sample: 100 test prompts


def server(models_dir, port: int, log):
    """vLLM's API server on the port, as a context manager."""
    return vllm_server(models_dir / EMBEDDED_MODEL_NAME, SERVED, port, log)


def completed_requests(port: int) -> int:
    """Requests the server finished, by its own Prometheus counter (all finish reasons)."""
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:request_success_total{")))


def rowids(cache_file) -> dict[str, int]:
    """Each cached key's rowid: a rewritten row (INSERT OR REPLACE) gets a new one."""
    db = sqlite3.connect(cache_file)
    try:
        return dict(db.execute("SELECT key, rowid FROM responses"))
    finally:
        db.close()


@pytest.fixture(scope="module")
def interrupted(models_dir, make_workspace, tmp_path_factory):
    port = free_port()
    logs = tmp_path_factory.mktemp("servers")
    workspace = make_workspace(f"""
models:
  - name: {MODEL}
    backend: openai
    source: {{embedded: {EMBEDDED_MODEL_NAME}}}
    sampling: {{max_tokens: 16}}
    server: {{base_url: "http://127.0.0.1:{port}/v1", served_model: {SERVED}, max_concurrency: 2, max_retries: 1}}
""")
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
        killed_at = time.monotonic()
        (failed,) = job.wait(timeout=300)
        failed_after_s = time.monotonic() - killed_at
    cached = workspace.cached_answers()
    cached_rowids = rowids(workspace.cache_file)

    second_log = logs / "second.log"
    with server(models_dir, port, second_log):
        (resumed,) = workspace.run(generate)
        served = completed_requests(port)
    return dict(total=total, failed=failed, failed_after_s=failed_after_s, cached=cached, cached_rowids=cached_rowids,
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
    # Only the requests in flight retry (once, after 0.5-0.75 s); the queued ones are not sent.
    assert interrupted["failed_after_s"] < 15
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
    now = rowids(workspace.cache_file)
    assert {key: now[key] for key in interrupted["cached_rowids"]} == interrupted["cached_rowids"]  # not rewritten
    predictions = pd.read_parquet(workspace.asset_file("predictions", MODEL, TASK))
    prompts = variant_prompts(pd.read_parquet(workspace.asset_file("prompts", TASK)))
    assert predictions["id"].tolist() == prompts["id"].tolist() and predictions["text"].notna().all()

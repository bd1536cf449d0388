"""PHI canary: clinical notes whose every text carries a unique canary string run through the
whole pipeline (preview off, the embedded model on real vLLM and the baseline, a bad row
dropped, failing checks, a failing run), and a review session in Chromium (a note read on the
review page, a verdict recorded whose comment quotes it, the adjudicated gold and the comparison
after it); then every file under the Dagster instance, the state folder, the captured output
(the review server's log included) and Chromium's profile and disk cache is scanned for the
canary: it may appear only where the docs (docs/your-data.md) say notes are kept, and in the
response cache's database only in its `responses` and `adjudications` tables.

The scan reads each file's bytes, and also what a byte search cannot see whole: SQLite
databases (a long row spills over pages) through a dump of a copy with their WAL, Parquet
files (compressed pages) through their decoded rows, gzip files decompressed.

Slow: two vLLM engine starts, one in a step process (as the UI runs it), one in `make run`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import REPO, small_datasets
from support import free_port, server_process
from dagster import DagsterEventType, DagsterInstance

pytestmark = pytest.mark.slow

CANARY = f"CANARY-{uuid.uuid4().hex}"
MODEL, BASELINE = "smollm2-135m", "tfidf-logreg"
NOTES = ("stigma_labeling", "medication_change_discussion")
BAD_ROW_ID = f"bad-{uuid.uuid4().hex[:12]}"  # not PHI: ids are recorded in metadata
REGISTRY = f"""
models:
  - name: {MODEL}
    backend: vllm
    source: {{embedded: smollm2-135m-instruct}}
    sampling: {{max_tokens: 16}}
  - name: {BASELINE}
    backend: baseline
"""
# Where notes are kept, as docs/your-data.md must name them: the data assets hold the notes; the
# predictions, parsed_labels (answer and reasoning columns) and the response cache hold the
# model's answers, which can quote a note.
PHI_ASSETS = ("raw_dataset", "split", "prompts", "predictions", "parsed_labels")
# The response cache's database holds the answers and the reviewers' verdicts (a comment may quote a note).
PHI_TABLES = {"responses", "adjudications"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def add_canaries(csv: Path, task: str, bad_label_row: bool) -> None:
    rows = pd.read_csv(csv, dtype=str, keep_default_na=False)
    rows["text"] = [f"{CANARY}-{task}-{n} {text}" for n, text in enumerate(rows["text"])]
    if bad_label_row:
        bad = pd.DataFrame([{"id": BAD_ROW_ID, "text": f"{CANARY}-{task}-bad-row {rows['text'].iloc[0]}", "label": "maybe"}])
        rows = pd.concat([rows.iloc[:7], bad, rows.iloc[7:]], ignore_index=True)
    rows.to_csv(csv, index=False)


def instance_yaml(folder: Path) -> None:
    """The repository's dagster.yaml, its state folder made absolute (runs, events, compute logs)."""
    folder.mkdir(parents=True)
    text = (REPO / "dagster.yaml").read_text().replace("base_dir: .dagster", f"base_dir: {folder}/.dagster")
    (folder / "dagster.yaml").write_text(text)


def decoded_views(path: Path) -> list[bytes]:
    """A file's bytes, and its content decoded where bytes hide it (SQLite, Parquet, gzip)."""
    data = path.read_bytes()
    if data.startswith(b"SQLite format 3\x00"):
        with tempfile.TemporaryDirectory() as scratch:  # a copy, with its WAL, read as the next reader would
            copy = Path(scratch) / path.name
            for suffix in ("", "-wal"):
                if Path(f"{path}{suffix}").exists():
                    shutil.copy(f"{path}{suffix}", f"{copy}{suffix}")
            db = sqlite3.connect(copy)
            try:
                return [data, "\n".join(db.iterdump()).encode("utf-8", "replace")]
            finally:
                db.close()
    if data[:4] == b"PAR1":
        return [data, repr(pq.read_table(path).to_pylist()).encode("utf-8", "replace")]
    if data[:2] == b"\x1f\x8b":
        return [data, gzip.decompress(data)]
    return [data]


def tables_holding(database: Path, needle: str) -> set[str]:
    """The tables of a SQLite database (read from a copy, with its WAL) whose rows hold `needle`."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / database.name
        for suffix in ("", "-wal"):
            if Path(f"{database}{suffix}").exists():
                shutil.copy(f"{database}{suffix}", f"{copy}{suffix}")
        db = sqlite3.connect(copy)
        try:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {table for table in tables if any(needle in repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))}
        finally:
            db.close()


def review_session(env: dict[str, str], log: Path, task: str, profile: Path) -> str:
    """The review page served as `make review` serves it; in Chromium, with its profile and disk
    cache in `profile`, the URL with the access token opened, then the first item of `task` (its
    note shown: the control) and a `wrong` verdict recorded whose comment quotes the note.
    Returns the item's id."""
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = uuid.uuid4().hex
    command = [sys.executable, "-m", "medassets.review", "--port", str(port)]
    with (server_process(command, log, f"{base}/?token={token}", 120, "the review server", env=env | {"MEDASSETS_REVIEW_TOKEN": token}),
          sync_playwright() as playwright):
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, f"--disk-cache-dir={profile / 'cache'}"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/tasks/{task}?token={token}")
            first = page.locator("table.items tbody tr td:first-child a").first
            item = first.inner_text()
            first.click()
            expect(page.locator("#text")).to_contain_text(CANARY)
            page.locator("input[name=verdict][value=wrong]").check()
            page.locator("select[name=reason]").select_option("annotation error")
            page.locator("textarea[name=comment]").fill(f"the note says {page.locator('#text').inner_text()[:80]}")
            page.locator("input[name=reviewer]").fill("ana")
            page.get_by_role("button", name="Record verdict").click()
            expect(page.locator("#history tbody tr")).to_have_count(1)
        finally:
            browser.close()
    return item


def scan(folder: Path, needle: str) -> tuple[dict[Path, int], list[Path]]:
    """{file: occurrences of `needle`} for every regular file under `folder` (symlinks not
    followed), and the symlinks skipped."""
    counts, links = {}, []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            links.append(path)
        elif path.is_file():
            counts[path] = max(view.count(needle.encode()) for view in decoded_views(path))
    return counts, links


def may_hold_notes(path: Path, root: Path) -> bool:
    relative = path.relative_to(root).parts
    return (
        relative[0] == "data"  # the user's own files
        or relative[:2] in {("home", "assets")} and relative[2] in PHI_ASSETS
        or relative[:2] == ("home", "cache") and relative[2].startswith("responses.sqlite")
    )


def location(path: Path, root: Path) -> str:
    """What a scanned file is, for the report."""
    if not path.is_relative_to(root):
        return "vLLM state"
    relative = path.relative_to(root)
    for prefix, name in [("instance/.dagster/storage", "run and event storage"), ("instance/.dagster/logs", "compute logs"),
                         ("chromium", "Chromium's profile and cache"),
                         ("home/assets", "asset files"), ("home/reports", "reports"), ("home/cache", "response cache"),
                         ("data", "source data")]:
        if relative.is_relative_to(prefix):
            return name
    return "captured output" if relative.suffix in (".log", ".json") else "other"


@pytest.fixture(scope="module")
def canary_run(make_workspace):
    """The pipeline on canary notes; then the scan of everything it left."""
    started = time.time()
    workspace = make_workspace(REGISTRY)
    data = workspace.root / "data"
    data.mkdir()
    datasets = small_datasets(data)
    for task in NOTES:
        add_canaries(data / f"{task}.csv", task, bad_label_row=task == NOTES[1])
    config = json.loads(datasets.read_text())
    config["tasks"][NOTES[1]]["drop_bad_rows"] = True
    datasets.write_text(json.dumps(config))
    workspace.datasets = datasets
    instance_dir = workspace.root / "instance"
    instance_yaml(instance_dir)

    # 1. A model's notes generated as the UI runs it: a process per step, vLLM inside one.
    key = f"{MODEL}|{NOTES[1]}"
    ui_runs = workspace.run(f"prepare_data:{NOTES[1]}", "prepare_embedded_model", "observe_models",
                            f"generate:{key}", f"evaluate:{key}", multiprocess=True, timeout=600)

    # 2. `make run`: everything, both models, all six tasks, in this instance.
    env = workspace.env() | {"DAGSTER_HOME": str(instance_dir)}
    with (workspace.root / "make-run.log").open("w") as log:
        make_run = subprocess.run([sys.executable, "-m", "medassets.run"], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=900)
    make_run_output = (workspace.root / "make-run.log").read_text(errors="replace")
    assert make_run.returncode == 0, make_run_output[-3000:]

    # 3. A review session in Chromium, then the verdict's way through the graph: observed,
    # the adjudicated gold of the task, the comparison and its report.
    reviewed = review_session(env, workspace.root / "review-server.log", NOTES[0], workspace.root / "chromium") if CHROMIUM.exists() else None
    review_runs = workspace.run("observe_adjudications", f"adjudicate:{NOTES[0]}", "compare")

    # 4. A failing run: the stigma notes' label mapped to the text column, no rows dropped,
    # so every row is bad and the error names what it saw.
    failing_config = data / "failing.yaml"
    failing_config.write_text(json.dumps({"tasks": {NOTES[0]: {
        "path": f"{NOTES[0]}.csv", "columns": {"id": "id", "text": "text", "label": "text"}}}}))
    workspace.extra_env["MEDASSETS_DATASETS"] = str(failing_config)
    (failing,) = workspace.start(f"prepare_data:{NOTES[0]}", multiprocess=True).wait(300)

    with DagsterInstance.from_config(str(instance_dir)) as instance:
        evaluations = [entry.dagster_event.event_specific_data for run in instance.get_runs()
                       for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
        failed_checks = sorted({evaluation.check_name for evaluation in evaluations if not evaluation.passed})
    vllm_state = [Path.home() / ".cache" / "vllm", Path.home() / ".config" / "vllm"]
    touched = [p for folder in vllm_state if folder.is_dir() for p in folder.rglob("*")
               if p.is_file() and not p.is_symlink() and p.stat().st_mtime >= started]
    counts, links = scan(workspace.root, CANARY)
    counts |= {path: max(view.count(CANARY.encode()) for view in decoded_views(path)) for path in touched}
    cache_tables = tables_holding(workspace.home / "cache" / "responses.sqlite", CANARY)
    return dict(workspace=workspace, ui_runs=ui_runs, failing=failing, failed_checks=failed_checks,
                make_run_output=make_run_output, counts=counts, links=links, vllm_files=touched,
                reviewed=reviewed, review_runs=review_runs, cache_tables=cache_tables)


def test_the_canary_is_nowhere_but_where_notes_are_kept(canary_run):
    root = canary_run["workspace"].root
    counts = canary_run["counts"]
    leaks = {str(path.relative_to(root)) if path.is_relative_to(root) else str(path): n
             for path, n in counts.items() if n and not (path.is_relative_to(root) and may_hold_notes(path, root))}
    allowed = {str(p.relative_to(root)): n for p, n in counts.items() if n and p.is_relative_to(root) and may_hold_notes(p, root)}
    places = Counter(location(path, root) for path in counts)
    print(f"\nscanned {len(counts)} files {dict(places)}, skipped {len(canary_run['links'])} symlinks; canary found "
          f"{sum(allowed.values())} times in {len(allowed)} files where notes are kept: {allowed}")
    assert leaks == {}


def test_the_scan_sees_the_canary_where_notes_are_kept(canary_run):
    root = canary_run["workspace"].root
    counts = canary_run["counts"]
    home = root / "home" / "assets"
    for task in NOTES:
        rows = len(pd.read_parquet(home / "raw_dataset" / f"{task}.parquet"))
        assert counts[home / "raw_dataset" / f"{task}.parquet"] >= rows  # Parquet decoded
        assert counts[home / "split" / f"{task}.parquet"] >= rows
        assert counts[home / "prompts" / f"{task}.parquet"] >= 1
        assert counts[root / "data" / f"{task}.csv"] >= rows  # plain bytes
    # The dropped row: its id is in metadata, its text only in the user's file.
    bad_text = f"{CANARY}-{NOTES[1]}-bad-row".encode()
    holding = [p for p in counts if any(bad_text in view for view in decoded_views(p))]
    assert holding == [root / "data" / f"{NOTES[1]}.csv"]


def test_the_scan_reads_the_event_log_compute_logs_and_output(canary_run):
    """Known non-PHI strings prove the scan reads each kind of location it reports clean."""
    root = canary_run["workspace"].root
    storage = root / "instance" / ".dagster"
    databases = [p for p in canary_run["counts"] if p.is_relative_to(storage / "storage") and p.suffix == ".db"]
    assert any(BAD_ROW_ID.encode() in view for p in databases for view in decoded_views(p))  # dropped ids, in metadata
    compute_logs = [p for p in canary_run["counts"] if p.is_relative_to(storage / "logs")]
    assert any(b"answers are cached" in p.read_bytes() for p in compute_logs)
    assert "Initializing a V1 LLM engine" in canary_run["make_run_output"]  # vLLM's own log, captured
    assert any("Initializing a V1 LLM engine" in (root / f).read_text(errors="replace") for f in os.listdir(root) if f.endswith(".log"))


def test_the_pipeline_dropped_the_bad_row_failed_checks_and_a_run(canary_run):
    metadata = canary_run["ui_runs"][0]["materializations"]["raw_dataset"][NOTES[1]]
    assert metadata["dropped_rows"] == 1 and BAD_ROW_ID in json.dumps(metadata["dropped"])
    assert "preview" not in metadata
    assert "raw_dataset_positive_rate" in canary_run["failed_checks"]
    failing = canary_run["failing"]
    assert not failing["success"]
    error = "\n".join(failing["errors"])
    assert f"{NOTES[0]}.csv" in error and "'label'" in error and "rows 1, 2, 3, 4, 5" in error


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser)")
def test_a_review_session_keeps_the_note_in_the_browser_and_the_allowed_tables(canary_run):
    root = canary_run["workspace"].root
    assert "adjudications" in canary_run["cache_tables"]  # the verdict's comment: the control
    assert canary_run["cache_tables"] <= PHI_TABLES  # an answer may quote a note too; no other table holds one
    server_log = (root / "review-server.log").read_text(errors="replace")
    assert f"/tasks/{NOTES[0]}/items/{canary_run['reviewed']}" in server_log  # the access log, by id, scanned clean
    adjudicated = canary_run["workspace"].asset_file("adjudicated_gold", NOTES[0])
    assert canary_run["counts"][adjudicated] == 0 and pd.read_parquet(adjudicated)["verdict"].eq("wrong").sum() == 1
    report = root / "home" / "reports" / "report.html"
    profile = [path for path in canary_run["counts"] if path.is_relative_to(root / "chromium")]
    history = [view for path in profile if path.name == "History" for view in decoded_views(path)]
    assert any(f"/tasks/{NOTES[0]}/items/{canary_run['reviewed']}".encode() in view for view in history)  # the scan reads the profile
    assert canary_run["counts"][report] == 0 and "Original and adjudicated gold labels" in report.read_text()
    assert canary_run["review_runs"][2]["materializations"]["comparison"]["None"]["labels_changed_by_adjudication"] == {NOTES[0]: 1}

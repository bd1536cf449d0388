"""The review page end to end, in Debian's Chromium, over a real pipeline's state.

Small data: the sample breast-cancer rows (100 test items), split and prompts by
the real `prepare_data` job. The answers of two models are written as `predictions` frames
straight into the asset storage, through the real AssetStorage (no engine: the claims are about
the page, and generating would add minutes); the real `evaluate` job parses them and scores
them. Every item's text carries a canary, and model-a's reasoning quotes it.

In the browser: the discordant filter of the pair shows exactly the items McNemar's b + c
counts on the stored parsed labels; the task page names the runs its labels came from; an item
page shows each model's answer as parsed_labels holds it; two items are adjudicated through the
form; a reload shows their history. Then the real `observe_adjudications`, `adjudicate`,
`evaluate` (run config `gold: adjudicated`), `compare` and `analyze_errors` jobs run: the metrics
equal scikit-learn's on the corrected gold, the report shows F1 on the original and adjudicated
gold side by side, and the comparison's and error analysis' links lead to the task's review
page. The server's log, and every URL the browser asked for, hold no canary; the page itself
does (the control). The task page's screenshot is the docs' (MEDASSETS_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import Workspace
from sklearn.metrics import f1_score, precision_score, recall_score
from support import free_port, server_process

from medassets.core.answers import PREDICTION_COLUMNS
from medassets.core.metrics import mcnemar
from medassets.defs.io import AssetStorage
from medassets.tasks import TASKS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent.parent / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("MEDASSETS_UPDATE_SCREENSHOTS") == "1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TASK = "breast_cancer"
MODELS = ("model-a", "model-b")
CANARY = f"CANARY-{uuid.uuid4().hex}"
ACCESS_TOKEN = uuid.uuid4().hex
REGISTRY = "models:\n" + "".join(f"  - name: {name}\n    backend: baseline\n    seed: {n}\n" for n, name in enumerate(MODELS))


def _answers(test: pd.DataFrame, model: str) -> pd.DataFrame:
    """model-a is wrong on the even items, model-b on most odd ones: most items are discordant,
    more than a page. Each has an invalid answer; model-b's last is cut off at max_tokens."""
    positive, negative = TASKS[TASK].positive_phrase, TASKS[TASK].negative_phrases[0]
    texts, finish, reasoning = [], [], []
    for n, label in enumerate(test["label"]):
        right = n % 2 == 1 if model == "model-a" else (n % 2 == 0 or n % 5 == 0)
        texts.append(f"The tweet is {positive if (label == 1) == right else negative}.".replace("The tweet is the tweet", "The tweet"))
        finish.append("stop")
        reasoning.append(f"quoting {CANARY}" if model == "model-a" else None)
    texts[1] = "I cannot say."  # neither phrase: invalid
    if model == "model-b":
        texts[-1], finish[-1] = "The tweet is", "length"
    return pd.DataFrame({
        "id": test["id"].to_numpy(), "prompt_hash": "0" * 16, "text": texts, "reasoning": pd.Series(reasoning, dtype=object),
        "finish_reason": finish, "prompt_tokens": 100, "completion_tokens": 12, "score": float("nan"), "choice_logprobs": None,
        "part": "test", "sample": 0, "seed": pd.array([0] * len(texts), dtype="Int64"),
        "label": pd.array([pd.NA] * len(texts), dtype="Int64"), "engine": "written by the test",
        "reasoning_tokens": pd.array([pd.NA] * len(texts), dtype="Int64"),
    })[PREDICTION_COLUMNS]


def _screenshot(page, name: str, tmp_path: Path) -> None:
    """To pytest's tmp_path, or to medassets_tests/screenshots/ (for the docs) with MEDASSETS_UPDATE_SCREENSHOTS=1."""
    page.screenshot(path=str((SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path) / name))


def _rows_of_filter(page, first_url: str) -> list[str]:
    """The item ids a filter shows, over all its pages."""
    ids = []
    page.goto(first_url)
    while True:
        ids += [link.inner_text() for link in page.locator("table.items tbody tr td:first-child a").all()]
        following = page.locator("a[rel=next]")
        if not following.count():
            return ids
        following.click()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser)")
def test_review_session(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "models").mkdir()
    workspace = Workspace(tmp_path, tmp_path / "models", REGISTRY)
    workspace.run(f"prepare_data:{TASK}")
    storage = AssetStorage(root_url=str(workspace.home))
    split = storage.read("split", [TASK])
    split["text"] = [f"{CANARY} {text}" for text in split["text"]]  # what the page shows; never in a log
    storage.write("split", [TASK], split)
    test = storage.read("prompts", [TASK]).query("variant == 'paper'")[["id", "label"]].reset_index(drop=True)
    for model in MODELS:
        storage.write("predictions", [model, TASK], _answers(test, model))
    evaluations = workspace.run(*(f"evaluate:{model}|{TASK}" for model in MODELS))
    evaluated_by = {model: report["run_id"] for model, report in zip(MODELS, evaluations)}
    labels = {model: storage.read("parsed_labels", [model, TASK]).set_index("id").sort_index() for model in MODELS}
    a, b = labels["model-a"], labels["model-b"]
    expected = mcnemar(a["gold"], a["label"], b.loc[a.index, "label"])
    right_a = np.where(a["label"] == -1, 0, a["label"]) == a["gold"]
    right_b = np.where(b["label"] == -1, 0, b["label"]) == b["gold"]
    discordant = sorted(a.index[right_a != right_b])
    assert len(discordant) == expected["b"] + expected["c"] > 50  # more than a page

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "review-server.log"
    workspace.extra_env["MEDASSETS_REVIEW_URL"] = base  # the links the comparison and error analysis record
    env = workspace.env() | {"DAGSTER_HOME": str(tmp_path / "instance"), "MEDASSETS_REVIEW_TOKEN": ACCESS_TOKEN}
    command = [sys.executable, "-m", "medassets.review", "--port", str(port)]
    asked: list[str] = []
    with server_process(command, log, f"{base}/?token={ACCESS_TOKEN}", 120, "the review server", env=env), sync_playwright() as playwright:
        headers = httpx.get(f"{base}/").headers
        assert "default-src 'none'" in headers["content-security-policy"]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda request: asked.append(request.url))
        page.goto(f"{base}/tasks/{TASK}?token={ACCESS_TOKEN}")  # the session starts; the token leaves the address
        assert page.url == f"{base}/tasks/{TASK}"
        page.locator("select[name=a]").select_option("model-a")
        page.locator("select[name=b]").select_option("model-b")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#count-discordant")).to_contain_text(f"b = {expected['b']}, c = {expected['c']}")
        for model in MODELS:  # the page names the partitions and runs its labels came from
            for shown in ("parsed_labels", f"{model}|{TASK}", evaluated_by[model]):
                expect(page.locator(f"#source-{model}")).to_contain_text(shown)
        _screenshot(page, "review-task.png", tmp_path)
        assert sorted(_rows_of_filter(page, page.url)) == discordant

        item = str(a.index[1])  # invalid for both models
        page.goto(f"{base}/tasks/{TASK}/items/{item}")
        expect(page.locator("#text")).to_contain_text(CANARY)  # the control: the text reaches the browser
        for model in MODELS:
            row = labels[model].loc[item]
            shown = f"invalid: {row['invalid_reason']}" if row["label"] == -1 else str(row["label"])
            expect(page.locator(f"#answer-{model} .label")).to_have_text(shown)
            expect(page.locator(f"#answer-{model} .parsed")).to_have_text(row["answer"])
        expect(page.locator("#answer-model-a details").first).not_to_have_attribute("open", "")

        corrected = a["gold"].copy()
        for adjudicated in (str(a.index[0]), str(a.index[2])):
            page.goto(f"{base}/tasks/{TASK}/items/{adjudicated}")
            page.locator("input[name=verdict][value=wrong]").check()
            page.locator("select[name=reason]").select_option("annotation error")
            page.locator("textarea[name=comment]").fill(f"the note says {CANARY}")
            page.locator("input[name=reviewer]").fill("ana")
            page.get_by_role("button", name="Record verdict").click()
            expect(page.locator("#history tbody tr")).to_have_count(1)
            corrected[adjudicated] = 1 - corrected[adjudicated]
        page.reload()
        expect(page.locator("#history tbody tr")).to_have_count(1)
        expect(page.locator("#history")).to_contain_text("ana")
        for odd, status in (("/tasks/nope", 404), (f"/tasks/{TASK}/items/no-such-item", 404), (f"/tasks/{TASK}?filter=x", 400)):
            assert page.goto(f"{base}{odd}").status == status, odd
        page.screenshot(path=str(tmp_path / "item.png"), full_page=True)

        config = tmp_path / "gold.json"
        config.write_text(json.dumps({"ops": {"metrics": {"config": {"gold": "adjudicated"}}}}))
        runs = workspace.run("observe_adjudications", f"adjudicate:{TASK}", f"evaluate:model-a|{TASK}@{config}", "compare",
                             f"analyze_errors:{TASK}")
        metrics = storage.read("metrics", ["model-a", TASK]).iloc[0]
        predicted = np.where(a["label"] == -1, 0, a["label"])
        assert metrics["gold"] == "adjudicated"
        assert metrics["f1"] == pytest.approx(f1_score(corrected, predicted))
        assert metrics["precision"] == pytest.approx(precision_score(corrected, predicted))
        assert metrics["recall"] == pytest.approx(recall_score(corrected, predicted))
        assert metrics["f1"] != pytest.approx(f1_score(a["gold"], predicted))

        # The report: F1 on the original and the adjudicated gold side by side, the labels changed.
        compared = runs[3]["materializations"]["comparison"]["None"]
        assert compared["labels_changed_by_adjudication"] == {TASK: 2}
        page.goto((workspace.home / "reports" / "report.html").as_uri())
        side_by_side = page.locator("#adjudication-by-task tbody tr").first
        expect(side_by_side).to_contain_text(TASKS[TASK].title)
        expect(side_by_side).to_contain_text(f"{f1_score(a['gold'], predicted):.2f} → {f1_score(corrected, predicted):.2f}")
        assert "Labels changed" in page.locator("#adjudication-by-task thead").inner_text()
        assert CANARY not in page.content()

        # From the Dagster metadata to the review page, from both assets.
        assert f"({base}/tasks/{TASK})" in compared["review_pages"]
        page.goto(runs[4]["materializations"]["error_analysis"][TASK]["review_page"])
        expect(page.locator("h1")).to_have_text(TASKS[TASK].title)
        browser.close()

    server_log = log.read_text(errors="replace")
    assert f"/tasks/{TASK}/items/{item}" in server_log  # the access log is there, by id
    assert CANARY not in server_log
    assert not [url for url in asked if CANARY in url]

"""The review server as `make review` runs it (`python -m medassets.review`), asked over real HTTP
by httpx and, for paths a URL library would normalize, by http.client: it answers only at its own
Host, only to a session started with its access token, takes a form only with the session's token
from one of its own origins, refuses ids that are not ids, and shows text as text.

The state: two models' labels, their finish reasons and the split of one task, written through
the real AssetStorage into a temporary MEDASSETS_HOME (the registry's models; no Dagster instance).
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from support import free_port, server_process

from medassets.defs.io import AssetStorage
from medassets.review.app import EXCERPT_CHARS
from medassets.review.state import ReviewState

TASK = "breast_cancer"
MODELS = ("model-a", "model-b")
SCORED = "model-b"
TOKEN = "fixed-access-token-of-the-test"
IDS = [f"item-{n:03d}" for n in range(6)]
SCRIPT_ITEM, LONG_ITEM = IDS[0], IDS[1]
SCRIPT_NOTE = '<script>document.title = "run"</script> the note'
LONG_NOTE = "a long note whose start is shown in the list " * 5


def write_state(home: Path) -> Path:
    """A registry of the two models, and their labels on TASK with the split; the registry's path."""
    registry = home / "models.yaml"
    registry.write_text("models:\n" + "".join(f"  - name: {name}\n    backend: baseline\n" for name in MODELS))
    storage = AssetStorage(root_url=str(home))
    texts = [SCRIPT_NOTE, LONG_NOTE, *(f"note {n}" for n in range(2, len(IDS)))]
    storage.write("split", [TASK], pd.DataFrame({"id": IDS, "text": texts, "label": [n % 2 for n in range(len(IDS))], "split": "test"}))
    for column, model in enumerate(MODELS):
        labels = labels_frame([(n + column) % 2 for n in range(len(IDS))])
        if model == SCORED:  # a scored model's answers: its scores, no text
            labels = labels.assign(answer="", score=[0.25 + 0.5 * ((n + column) % 2) + n / 100 for n in range(len(IDS))])
        storage.write("parsed_labels", [model, TASK], labels)
        storage.write("predictions", [model, TASK], pd.DataFrame({"id": IDS, "finish_reason": "stop"}))
    return registry


def labels_frame(labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "id": pd.array(IDS, dtype="string"), "gold": [n % 2 for n in range(len(IDS))], "label": labels,
        "answer": "x", "reasoning": None, "invalid_reason": pd.array([None] * len(IDS), dtype="string"),
    })


def server_env(home: Path, registry: Path, **extra: str) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("MEDASSETS_") and name != "DAGSTER_HOME"}
    return inherited | {"MEDASSETS_HOME": str(home), "MEDASSETS_REGISTRY": str(registry)} | extra


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, port, process, log) of a server whose access token is fixed by MEDASSETS_REVIEW_TOKEN."""
    home = tmp_path_factory.mktemp("review-home")
    env = server_env(home, write_state(home), MEDASSETS_REVIEW_TOKEN=TOKEN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "review-server.log"
    command = [sys.executable, "-m", "medassets.review", "--port", str(port)]
    with server_process(command, log, f"{base}/?token={TOKEN}", 120, "the review server", env=env) as process:
        yield base, port, process, log


@pytest.fixture
def session(server):
    """An httpx client holding a session cookie, got by opening the URL with the access token."""
    base = server[0]
    with httpx.Client(base_url=base) as client:
        opened = client.get(f"/?token={TOKEN}")
        assert opened.status_code == 303 and opened.headers["location"] == "/"  # the token leaves the address bar
        assert client.get("/").status_code == 200
        yield client


def form_token(client: httpx.Client, item: str) -> str:
    page = client.get(f"/tasks/{TASK}/items/{item}")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def verdict(csrf_token: str, reviewer: str = "ana") -> dict[str, str]:
    return {"verdict": "correct", "reason": "other", "comment": "", "reviewer": reviewer, "csrf_token": csrf_token}


def history_rows(client: httpx.Client, item: str) -> int:
    return client.get(f"/tasks/{TASK}/items/{item}").text.count("<tr><td>")


def test_it_listens_on_loopback_only_by_default(server):
    _, port, process, _ = server
    listening = {connection.laddr for connection in psutil.Process(process.pid).net_connections("inet")
                 if connection.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", port)}


def test_no_access_token_no_page(server):
    base = server[0]
    for path in ("/", f"/tasks/{TASK}", f"/tasks/{TASK}/items/{IDS[2]}", "/review.css", "/?token=wrong", "/?token="):
        assert httpx.get(f"{base}{path}").status_code == 401, path
    with httpx.Client(base_url=base, cookies={"medassets_review_session": "made-up"}) as forged:
        assert forged.get("/").status_code == 401
    posted = httpx.post(f"{base}/tasks/{TASK}/items/{IDS[2]}/adjudications", data=verdict("0"), headers={"origin": base})
    assert posted.status_code == 401


def test_a_foreign_host_gets_400_whatever_it_holds(server, session):
    base, port = server[:2]
    foreign = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}
    assert session.get("/", headers=foreign).status_code == 400
    assert httpx.get(f"{base}/?token={TOKEN}", headers=foreign).status_code == 400
    csrf_token = form_token(session, IDS[2])
    before = history_rows(session, IDS[2])
    posted = session.post(f"/tasks/{TASK}/items/{IDS[2]}/adjudications", data=verdict(csrf_token, "attacker"), headers=foreign)
    assert posted.status_code == 400
    assert history_rows(session, IDS[2]) == before
    assert session.get("/", headers={"host": f"localhost:{port}"}).status_code == 200  # a loopback name is the page's own


def test_a_form_needs_the_session_token_and_one_of_the_page_origins(server, session):
    base, port = server[:2]
    item = IDS[3]
    csrf_token = form_token(session, item)
    url = f"/tasks/{TASK}/items/{item}/adjudications"
    assert session.post(url, data=verdict("0" * len(csrf_token)), headers={"origin": base}).status_code == 403
    with httpx.Client(base_url=base) as other:  # another session's token
        other.get(f"/?token={TOKEN}")
        assert session.post(url, data=verdict(form_token(other, item)), headers={"origin": base}).status_code == 403
    for origin in ("http://evil.example", f"http://evil.example:{port}", f"http://127.0.0.1:{port + 1}", "null"):
        assert session.post(url, data=verdict(csrf_token), headers={"origin": origin}).status_code == 403, origin
    assert session.post(url, data=verdict(csrf_token)).status_code == 403  # no Origin
    assert history_rows(session, item) == 0
    recorded = session.post(url, data=verdict(csrf_token), headers={"origin": f"http://localhost:{port}"})
    assert recorded.status_code == 303  # the control: the same form from the page's own origin
    assert history_rows(session, item) == 1


def raw_get(port: int, path: str, cookie: str) -> int:
    """The status of a GET of `path` sent as it is (httpx would resolve `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": f"medassets_review_session={cookie}"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_ids_that_are_not_ids_get_400(server, session):
    port = server[1]
    cookie = session.cookies["medassets_review_session"]
    for item in ("..", "a" * 129, "%01item", "item%7f", "item%0a"):
        assert raw_get(port, f"/tasks/{TASK}/items/{item}", cookie) == 400, item
    for item in ("no-such-item", "a" * 128):  # the control: well-formed ids that are not items
        assert raw_get(port, f"/tasks/{TASK}/items/{item}", cookie) == 404, item
    assert raw_get(port, f"/tasks/{TASK}/items/{IDS[2]}", cookie) == 200


def test_note_and_reviewer_render_as_text(server, session):
    port = server[1]
    csrf_token = form_token(session, SCRIPT_ITEM)
    posted = session.post(f"/tasks/{TASK}/items/{SCRIPT_ITEM}/adjudications", data=verdict(csrf_token, "<b>x</b>"),
                          headers={"origin": f"http://127.0.0.1:{port}"})
    assert posted.status_code == 303
    item_page = session.get(f"/tasks/{TASK}/items/{SCRIPT_ITEM}").text
    assert "&lt;script&gt;document.title" in item_page and "&lt;b&gt;x&lt;/b&gt;" in item_page
    assert "<script" not in item_page and "<b>" not in item_page
    task_page = session.get(f"/tasks/{TASK}").text
    assert "&lt;script&gt;document.title" in task_page and "<script" not in task_page


def test_each_row_shows_the_start_of_its_text(session):
    flat = " ".join(LONG_NOTE.split())
    row = re.search(rf'items/{LONG_ITEM}">{LONG_ITEM}</a></td><td class="excerpt">([^<]*)</td>', session.get(f"/tasks/{TASK}").text)
    assert row.group(1) == flat[:EXCERPT_CHARS] + "…"
    assert LONG_NOTE in session.get(f"/tasks/{TASK}/items/{LONG_ITEM}").text  # the whole text on the item page


def test_a_scored_answer_is_shown_as_its_score(session):
    page = session.get(f"/tasks/{TASK}/items/{IDS[2]}").text
    scored = page[page.index(f'id="answer-{SCORED}"'):]
    assert re.search(r"<dt>Score</dt><dd class=\"parsed\">0\.770, the probability of the positive answer", scored)
    assert "<dt>Parsed answer</dt>" not in scored.split("</section>")[0]
    generated = page[page.index('id="answer-model-a"'):]
    assert '<dt>Parsed answer</dt><dd class="parsed">x</dd>' in generated.split("</section>")[0]


def test_a_random_token_is_printed_once_as_the_url_to_open(tmp_path):
    env = server_env(tmp_path, write_state(tmp_path))
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = psutil.Popen([sys.executable, "-m", "medassets.review", "--port", str(port)], env=env,
                               stdout=output, stderr=output, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (printed := re.search(rf"http://127\.0\.0\.1:{port}/\?token=([\w-]+)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        token = printed.group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while (opened := _try_get(client, f"/?token={token}")) is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            assert opened.status_code == 303 and client.get("/").status_code == 200
        assert token != TOKEN and len(token) >= 40
    finally:
        process.terminate()
        process.wait(30)
    written = log.read_text()
    assert written.count(token) == 1  # printed once; the access log holds `token=...`
    assert "GET /?token=... HTTP/1.1" in written


def _try_get(client: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return client.get(path)
    except httpx.TransportError:
        return None


def test_review_state_reads_a_task_again_after_its_labels_change(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(write_state(tmp_path)))
    state = ReviewState()
    first = state.task_items(TASK)
    assert first.labels[:, 0].tolist() == [n % 2 for n in range(len(IDS))]
    assert state.task_items(TASK) is first  # unchanged files: what was read
    AssetStorage(root_url=str(tmp_path)).write("parsed_labels", [MODELS[0], TASK], labels_frame([1] * len(IDS)))
    assert state.task_items(TASK).labels[:, 0].tolist() == [1] * len(IDS)
    assert state.text(TASK, IDS[2]) == "note 2"
    split = AssetStorage(root_url=str(tmp_path)).read("split", [TASK]).assign(text="rewritten")
    AssetStorage(root_url=str(tmp_path)).write("split", [TASK], split)
    assert state.text(TASK, IDS[2]) == "rewritten"


def test_a_model_asked_several_samples_shows_its_majority_label_and_each_samples_answer(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from medassets.core.labels import label_answers
    from medassets.review.app import create_app
    from medassets.tasks import TASKS

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("MEDASSETS_HOME", str(tmp_path))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(write_state(tmp_path)))
    positive, negative = TASKS[TASK].positive_phrase, TASKS[TASK].negative_phrases[0]
    answers = {0: [positive] * len(IDS), 1: [negative] * len(IDS), 2: [positive] * 3 + ["no idea"] * (len(IDS) - 3)}
    predictions = pd.DataFrame({
        "id": IDS * 3, "part": "test", "sample": [k for k in range(3) for _ in IDS], "seed": [1000 * k + n for k in range(3) for n in range(len(IDS))],
        "text": [text for k in range(3) for text in answers[k]], "reasoning": None, "finish_reason": "stop",
        "label": pd.array([None] * 3 * len(IDS), dtype="Int64"), "score": float("nan"),
    })
    gold = pd.Series([n % 2 for n in range(len(IDS))], index=IDS)
    storage = AssetStorage(root_url=str(tmp_path))
    storage.write("predictions", [MODELS[0], TASK], predictions)
    storage.write("parsed_labels", [MODELS[0], TASK], label_answers(TASK, predictions, gold, reasoning_model=False))
    state = ReviewState()
    # samples 1, 0, 1 on the first three items; 1, 0, invalid on the others: no majority, negative
    assert state.task_items(TASK).labels[:, 0].tolist() == [1, 1, 1, 0, 0, 0]
    (shown,) = [answer for answer in state.answers(TASK, IDS[4], state.task_items(TASK)) if answer.model == MODELS[0]]
    assert [(s.sample, s.seed, s.cell) for s in shown.samples] == [(0, 4, "1"), (1, 1004, "0"), (2, 2004, "invalid: no_phrase")]
    assert shown.cell == "0" and shown.answer == negative  # the majority, and the answer of the first sample giving it
    client = TestClient(create_app({"http://testserver"}, TOKEN, state))
    assert client.get(f"/?token={TOKEN}").status_code == 200  # the redirect followed, with its session
    page = client.get(f"/tasks/{TASK}/items/{IDS[4]}").text
    table = page[page.index(f'id="samples-{MODELS[0]}"'):]
    table = table[: table.index("</table>")]
    assert "Its 3 samples" in table and table.count("<tr><td>") == 3 and "invalid: no_phrase" in table and "2004" in table
    assert f'id="samples-{MODELS[1]}"' not in page  # one answer per item: no table

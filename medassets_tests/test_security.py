"""Security basics, each checked on the real thing: the UI `make ui` starts listens on 127.0.0.1
only unless told otherwise; an API key comes only from the environment variable the registry
names and appears in no metadata, log line, cache key or cache file (against vLLM's API server
started with `--api-key`, which refuses any other key); nothing is downloaded at run time."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from support import TOKEN_VARIABLE, free_port, processes_with_token, server_process, vllm_server

from medassets.core.cache import ResponseCache
from medassets.core.asking import Request
from medassets.core.cache import AnswerSettings, cache_key
from medassets.core.prompts import conversation, render_prompts, variant_prompts
from medassets.core.registry import HubSource, RegistryError, parse_registry
from medassets.engines import Batch, answer_key
from medassets.engines.openai_server import OpenAIBackend
from medassets.engines.vllm_offline import VLLMBackend, VLLMModel
from medassets.weights.embedded import EMBEDDED_MODEL_NAME
from medassets.weights.folders import ModelSourceError
from medassets.weights.sources import chat_template, source_revision

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "::1"}
CANARY_KEY = "sk-medassets-canary-" + uuid.uuid4().hex  # distinctive: found only where it leaked
KEY_VARIABLE = "MEDASSETS_TEST_SERVER_KEY"


# --- the UI ------------------------------------------------------------------------------

def make_ui_command(*overrides: str, env: dict | None = None) -> str:
    """The command `make ui` runs (`-o`: the venv counts as installed, so only the recipe prints)."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "ui", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()
    assert len(printed) == 1, printed
    return printed[0]


def test_make_ui_binds_to_loopback_unless_told_otherwise():
    assert re.search(r"/dg dev -h 127\.0\.0\.1 -p 3000$", make_ui_command())
    # A shell's own HOST variable (zsh sets one) does not move it; UI_HOST does, on purpose.
    assert " -h 127.0.0.1 " in make_ui_command(env=os.environ | {"HOST": "0.0.0.0"})
    assert " -h 0.0.0.0 " in make_ui_command("UI_HOST=0.0.0.0")


def listening(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            found |= {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    return found


def locations_loaded(base: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
        entries = httpx.post(f"{base}/graphql", json={"query": query}, timeout=5).json()["data"]["workspaceOrError"]["locationEntries"]
        return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)
    return False


@pytest.mark.slow
def test_the_ui_make_starts_listens_on_loopback_only(tmp_path):
    """`make ui` for real (from a folder holding copies of its files and the package, so the instance
    is a temporary one): every TCP socket its webserver, daemon and code server listen on is loopback.
    Stopped, it leaves nothing in its temporary folder (dg dev's and dagster dev's workspace.yaml)."""
    for name in ("Makefile", "pyproject.toml", "dagster.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "medassets").symlink_to(REPO / "medassets", target_is_directory=True)  # dg's project root module
    (tmp_path / ".nux").mkdir()
    (tmp_path / ".nux" / "nux.yaml").write_text("seen: 1\n")
    port, token = free_port(), uuid.uuid4().hex
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = os.environ | {
        TOKEN_VARIABLE: token, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "MEDASSETS_HOME": str(tmp_path / "state"), "MEDASSETS_AUTOMATION": "off",
    }
    command = ["make", "-C", str(tmp_path), "-o", ".venv/.installed", "ui", f"BIN={Path(sys.executable).parent}", f"PORT={port}"]
    base = f"http://127.0.0.1:{port}"
    try:
        with server_process(command, tmp_path / "ui.log", f"{base}/server_info", 180, "make ui", env=env):
            deadline = time.monotonic() + 120
            while not locations_loaded(base):  # the code server is up too
                assert time.monotonic() < deadline, "the code location did not load"
                time.sleep(1)
            processes = processes_with_token(token)
            sockets = listening(processes)
    finally:
        for process in processes_with_token(token):  # whatever outlived its process group
            with contextlib.suppress(psutil.Error):
                process.kill()
    assert len(processes) >= 3  # make, dg dev and its webserver, daemon and code server
    assert ("127.0.0.1", port) in sockets
    assert {ip for ip, _ in sockets} <= LOOPBACK, sockets  # the code server talks over a Unix socket
    assert [str(path.relative_to(scratch)) for path in scratch.rglob("*")] == []


# --- API keys ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "entry",
    [
        f"  - name: m\n    backend: openai\n    api_key: {CANARY_KEY}\n",
        f"  - name: m\n    backend: openai\n    server: {{api_key: {CANARY_KEY}}}\n",
        f"  - name: m\n    backend: openai\n    server: {{api_key_env: OPENAI_API_KEY, key: {CANARY_KEY}}}\n",
    ],
    ids=["api_key", "server.api_key", "server.key"],  # not the key itself: test ids are printed
)
def test_the_registry_takes_no_literal_key_and_does_not_echo_it(entry):
    with pytest.raises(RegistryError) as info:
        parse_registry("models:\n" + entry, "models.yaml")
    message = str(info.value)
    assert re.search(r"models\.yaml:\d+: model 'm': unknown field '(api_key|key)'", message)
    assert CANARY_KEY not in message


@pytest.fixture(scope="module")
def keyed_server(models_dir, tmp_path_factory):
    """vLLM's OpenAI-compatible server on 127.0.0.1, refusing any request without the canary key."""
    port = free_port()
    log = tmp_path_factory.mktemp("keyed-server") / "server.log"
    base_url = f"http://127.0.0.1:{port}/v1"
    # /health needs no key: the server is up; every /v1 route wants it.
    with vllm_server(
        models_dir / EMBEDDED_MODEL_NAME, "m", port, log, "--api-key", CANARY_KEY,
        max_model_len=1024, ready_path="/health", timeout_s=240,
    ):
        assert httpx.get(f"{base_url}/models", timeout=10).status_code == 401
        yield base_url


def openai_entry(base_url: str):
    registry = f"""models:
  - name: m
    backend: openai
    source: {{embedded: {EMBEDDED_MODEL_NAME}}}
    sampling: {{max_tokens: 8}}
    server: {{base_url: "{base_url}", api_key_env: {KEY_VARIABLE}, max_retries: 0}}
"""
    return parse_registry(registry)["m"]


@pytest.mark.slow
def test_the_key_comes_from_the_named_variable_and_leaks_nowhere(keyed_server, models_dir, tmp_path, monkeypatch, capfd):
    spec = openai_entry(keyed_server)
    rows = pd.DataFrame({"id": ["a", "b", "c"], "text": ["Diagnosed last May.", "Walked for the cure.", "Chemo day 3."], "label": [1, 0, 1]})
    prompts = {"breast_cancer": render_prompts("breast_cancer", rows)}
    splits = {"breast_cancer": rows.assign(part="test")}
    cache_path = tmp_path / "responses.sqlite"
    backend, lines = OpenAIBackend(), []

    def predict():
        return backend.predict(
            [Batch(spec, prompts, splits)], models_dir=models_dir, open_cache=functools.partial(ResponseCache, cache_path),
            report=lines.append,
        )["m"]

    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)  # the default variable is not the one the entry names
    with pytest.raises(Exception) as refused:
        predict()
    assert "401" in str(refused.value) and CANARY_KEY not in str(refused.value)

    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv(KEY_VARIABLE, CANARY_KEY)
    predictions = predict()  # the server took the key: it refuses every request without it
    assert predictions.frames["breast_cancer"]["completion_tokens"].gt(0).all()

    assert CANARY_KEY not in json.dumps(backend.describe(spec)) + json.dumps(predictions.metadata, default=str)
    assert lines and not any(CANARY_KEY in line for line in lines)
    out, err = capfd.readouterr()
    assert CANARY_KEY not in out + err
    # The cache keys are hashes of the answer settings and messages, which hold no key ...
    template = chat_template(spec.chat_template_text, None)
    settings = AnswerSettings(answer_key=answer_key(spec), chat_template_hash=template.hash)
    payload = json.dumps(settings.model_dump(mode="json"))
    assert CANARY_KEY not in payload
    cache = ResponseCache(cache_path)
    paper = variant_prompts(prompts["breast_cancer"])["prompt"]
    expected = [cache_key(settings, Request(conversation(prompt, system_prompt=spec.system_prompt))) for prompt in paper]
    assert len(cache.get_many(expected)) == 3  # ... and they are the keys the answers were stored under
    cache.close()
    for stored in tmp_path.glob("responses.sqlite*"):  # the database, and its write-ahead log
        assert CANARY_KEY.encode() not in stored.read_bytes()


# --- nothing is downloaded at run time ---------------------------------------------------

@pytest.fixture
def network_attempts(monkeypatch) -> list:
    """Every attempt to resolve or reach a host other than this machine, refused and recorded."""
    attempts = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            attempts.append(("resolve", host))
            raise socket.gaierror(f"network access in a test: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(("connect", address))
            raise ConnectionRefusedError(f"network access in a test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def test_a_hub_model_missing_from_the_cache_fails_clearly_without_the_network(tmp_path, monkeypatch, network_attempts):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # medassets asks for the local cache itself
    spec = VLLMModel(name="m", source=HubSource(hub="org/never-downloaded", revision="main"))
    backend = VLLMBackend()
    for resolve in (lambda: backend.revision(spec), lambda: backend.weights_folder(spec, tmp_path / "models")):
        with pytest.raises(ModelSourceError, match=r"org/never-downloaded@main is not in the local Hugging Face cache; medassets never downloads"):
            resolve()
    assert network_attempts == []


def test_the_network_guard_sees_a_download(tmp_path, monkeypatch, network_attempts):
    """The guard above is not blind: the hub library, allowed to download, is caught trying."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(LocalEntryNotFoundError):
        huggingface_hub.snapshot_download("org/never-downloaded", revision="main", cache_dir=tmp_path / "hub", etag_timeout=1)
    assert network_attempts and network_attempts[0][0] in ("resolve", "connect")
    with pytest.raises(ModelSourceError):
        source_revision(HubSource(hub="org/never-downloaded", revision="main"), "quick")

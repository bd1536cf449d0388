"""The `openai` backend's client against a small real HTTP server on 127.0.0.1 that answers as
scripted: 429 and 5xx a given number of times before answering, answers held long enough to
count the requests in flight, and reasoning in a separate field (`reasoning_content`, as vLLM's
reasoning parsers give it, or `reasoning`). The client's retries, concurrency limit and the
reasoning's way to the predictions and parsed labels are what is tested; vLLM's own server is
tested in test_openai_server.py."""

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from dagster import DagsterInstance

from conftest import small_datasets
from medassets.core.asking import Request
from medassets.core.prompts import render, variant_prompts
from medassets.core.registry import Sampling
from medassets.definitions import defs
from medassets.engines.openai_server import OpenAIModel, OpenAIServer, OpenAIServerEngine, ServerError
from medassets.tasks import TASKS

SERVED = "scripted"
TASK = "breast_cancer"


class ScriptedServer:
    """What the server saw, and what it is to answer: `failures` statuses first, one per
    request, then answers after `hold_s` seconds."""

    def __init__(self, failures=(), hold_s: float = 0.0, reasoning_field: str = "reasoning_content", reasoning_tokens: int | None = None):
        self.failures, self.hold_s, self.reasoning_field = list(failures), hold_s, reasoning_field
        self.reasoning_tokens = reasoning_tokens  # given in the usage's completion_tokens_details, as vLLM's reasoning parsers give it
        self.statuses: list[int] = []
        self.chats: list[list[dict]] = []  # the messages of each chat request, as received
        self.seeds: dict[str, int] = {}  # last user message -> the request's `seed`
        self.bodies: list[dict] = []  # each chat request's body, as received
        self.answers: dict[str, tuple[str, str]] = {}  # last user message -> (content, reasoning)
        self.in_flight = self.peak_in_flight = 0
        self.lock = threading.Lock()

    def answer(self, prompt: str) -> tuple[str, str]:
        """A positive or negative answer, by the prompt's hash; the reasoning argues the other way."""
        spec = TASKS[TASK]
        positive = hashlib.sha256(prompt.encode()).digest()[0] % 2 == 0
        phrases = (spec.positive_phrase, spec.negative_phrases[0])
        content, other = phrases if positive else phrases[::-1]
        return f"{content}.", f"At first I thought {other}, but no."

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.endswith("/models"):
            return self._send(handler, 200, {"data": [{"id": SERVED}]})
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self.lock:
            status = self.failures.pop(0) if self.failures else 200
            self.statuses.append(status)
            self.chats.append(body["messages"])
            self.seeds[body["messages"][-1]["content"]] = body.get("seed")
            self.bodies.append(body)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(self.hold_s)
            if status != 200:
                reply = {"error": {"message": "scripted failure"}}
            else:
                prompt = next(message["content"] for message in reversed(body["messages"]) if message["role"] == "user")
                content, reasoning = self.answer(prompt)
                with self.lock:
                    self.answers[prompt] = (content, reasoning)
                message = {"role": "assistant", "content": content, self.reasoning_field: reasoning}
                usage = {"prompt_tokens": 10, "completion_tokens": 5}
                if self.reasoning_tokens is not None:
                    usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
                reply = {"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage}
        finally:
            # Out of flight before the answer leaves: the client's next request can come as soon
            # as it has the answer, before this thread would otherwise count down.
            with self.lock:
                self.in_flight -= 1
        self._send(handler, status, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@contextlib.contextmanager
def scripted_server(script: ScriptedServer) -> Iterator[str]:
    """The server on a free port of 127.0.0.1, in a thread of the test process; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            script.respond(self)

        def do_POST(self):
            script.respond(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def engine(base_url: str, **server) -> OpenAIServerEngine:
    spec = OpenAIModel(name="any", server=OpenAIServer(base_url=base_url, served_model=SERVED, **server))
    return OpenAIServerEngine(spec)


def requests(n: int) -> list[Request]:
    return [Request([{"role": "user", "content": f"Tweet number {i}."}]) for i in range(n)]


def generate(client: OpenAIServerEngine, n: int, asked: list[Request] | None = None) -> dict:
    done = {}
    asked = requests(n) if asked is None else asked
    client.generate(asked, sampling=Sampling(), chat_template=None, on_done=lambda index, generation: done.__setitem__(index, generation))
    client.close()
    return done


@pytest.fixture(autouse=True)
def no_base_url_override(monkeypatch):
    monkeypatch.delenv("MEDASSETS_OPENAI_BASE_URL", raising=False)


def test_each_request_carries_its_own_seed_else_the_sampling_seed():
    script = ScriptedServer()
    asked = [Request([{"role": "user", "content": "sample 0"}]), Request([{"role": "user", "content": "sample 1"}], seed=123456)]
    with scripted_server(script) as url:
        client = engine(url)
        client.generate(asked, sampling=Sampling(temperature=0.7, seed=3), chat_template=None, on_done=lambda index, generation: None)
        client.close()
    assert script.seeds == {"sample 0": 3, "sample 1": 123456}


def test_top_k_and_min_p_are_sent_only_where_set():
    script = ScriptedServer()
    with scripted_server(script) as url:
        for sampling in (Sampling(temperature=0.6), Sampling(temperature=0.6, top_k=20, min_p=0.05)):
            client = engine(url)
            client.generate([Request([{"role": "user", "content": "one"}])], sampling=sampling, chat_template=None, on_done=lambda index, generation: None)
            client.close()
    assert [(body.get("top_k"), body.get("min_p")) for body in script.bodies] == [(None, None), (20, 0.05)]


def test_429_and_5xx_are_retried_until_the_server_answers():
    script = ScriptedServer(failures=[429, 503])
    with scripted_server(script) as url:
        done = generate(engine(url, max_retries=2, max_concurrency=1), 2)
    assert script.statuses == [429, 503, 200, 200]
    assert [done[i].text for i in range(2)] == [script.answer(f"Tweet number {i}.")[0] for i in range(2)]


def test_the_last_failure_is_reported_once_the_retries_are_spent():
    script = ScriptedServer(failures=[429, 502])
    with scripted_server(script) as url, pytest.raises(ServerError, match=r"/chat/completions: gave up after 2 attempts; last: HTTP 502"):
        generate(engine(url, max_retries=1), 1)
    assert script.statuses == [429, 502]


@pytest.mark.parametrize("limit", [1, 3])
def test_no_more_requests_in_flight_than_max_concurrency(limit):
    script = ScriptedServer(hold_s=0.2)
    with scripted_server(script) as url:
        done = generate(engine(url, max_concurrency=limit), 4 * limit)
    assert len(done) == 4 * limit
    assert script.peak_in_flight == limit


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_separate_reasoning_field_is_the_generations_reasoning(field):
    script = ScriptedServer(reasoning_field=field)
    with scripted_server(script) as url:
        done = generate(engine(url), 3)
    for i, generation in done.items():
        assert (generation.text, generation.reasoning) == script.answer(f"Tweet number {i}.")


def test_a_reply_prefix_is_continued_and_the_servers_reasoning_token_count_kept():
    """A conversation ending with the reply's start asks the server to continue it (vLLM's
    `continue_final_message`, without a new generation prompt); one ending with the user's turn asks
    as before. The usage's reasoning token count, where the server gives one, is the generation's."""
    opened = [Request(r.messages + [{"role": "assistant", "content": "<think>\n"}]) for r in requests(2)]
    script = ScriptedServer(reasoning_tokens=3)
    with scripted_server(script) as url:
        done = generate(engine(url, max_concurrency=1), 2, opened + requests(1))
    flags = [(body.get("add_generation_prompt"), body.get("continue_final_message")) for body in script.bodies]
    assert flags == [(False, True), (False, True), (None, None)]
    assert [chat[-1] for chat in script.chats[:2]] == [{"role": "assistant", "content": "<think>\n"}] * 2
    assert {generation.reasoning_tokens for generation in done.values()} == {3}
    script = ScriptedServer()  # a server that gives no count
    with scripted_server(script) as url:
        assert generate(engine(url), 1)[0].reasoning_tokens is None


@pytest.mark.slow  # three Dagster runs in a child process (~20 s)
def test_reasoning_reaches_predictions_and_parsed_labels_of_a_reasoning_model(make_workspace, tmp_path):
    """`reasoning: true` with the reasoning in its own field: the answer has no `</think>`, and
    is still valid (without the field it would count as truncated); the reasoning, which argues
    for the other label, is kept and decides nothing."""
    script = ScriptedServer(hold_s=0.05)
    with scripted_server(script) as url:
        workspace = make_workspace(f"""
models:
  - name: reasoner
    backend: openai
    reasoning: true
    server: {{base_url: "{url}", served_model: {SERVED}, max_concurrency: 2}}
""", datasets=small_datasets(tmp_path))
        workspace.run(f"prepare_data:{TASK}", f"generate:reasoner|{TASK}", f"evaluate:reasoner|{TASK}")
    prompts = variant_prompts(pd.read_parquet(workspace.asset_file("prompts", TASK)))
    predictions = pd.read_parquet(workspace.asset_file("predictions", "reasoner", TASK))
    labels = pd.read_parquet(workspace.asset_file("parsed_labels", "reasoner", TASK))
    assert script.peak_in_flight <= 2 and len(script.answers) == len(prompts) == len(labels)
    served = [script.answers[prompt] for prompt in prompts["prompt"]]
    assert list(zip(predictions["text"], predictions["reasoning"])) == served
    assert labels["reasoning"].tolist() == [reasoning for _, reasoning in served]
    assert labels["invalid_reason"].isna().all()
    spec = TASKS[TASK]
    assert labels["label"].tolist() == [int(content.startswith(spec.positive_phrase)) for content, _ in served]
    assert set(labels["label"]) == {0, 1}


def test_few_shot_examples_sent_through_dagster_are_train_rows_with_their_gold_answers(tmp_path, monkeypatch):
    """`shots: 2` materialized by the `generate` job: every request the server receives holds two
    example turns, each a train-split row's prompt answered with its gold label's phrase, and
    never a test row; then the test prompt."""
    script = ScriptedServer()
    registry = tmp_path / "models.yaml"
    home = tmp_path / "home"
    monkeypatch.setenv("MEDASSETS_HOME", str(home))
    monkeypatch.setenv("MEDASSETS_REGISTRY", str(registry))
    monkeypatch.setenv("MEDASSETS_DATASETS", str(small_datasets(tmp_path)))
    with scripted_server(script) as url, DagsterInstance.ephemeral() as instance:
        registry.write_text(f"models:\n  - {{name: two-shot, backend: openai, shots: 2, server: {{base_url: '{url}', served_model: {SERVED}}}}}\n")
        assert defs.resolve_job_def("prepare_data").execute_in_process(instance=instance, partition_key=TASK).success
        instance.add_dynamic_partitions("model", ["two-shot"])
        assert defs.resolve_job_def("generate").execute_in_process(instance=instance, partition_key=f"two-shot|{TASK}").success
    split = pd.read_parquet(home / "assets" / "split" / f"{TASK}.parquet")
    train, test = split[split["part"] == "train"], split[split["part"] == "test"]
    gold = {1: TASKS[TASK].positive_phrase, 0: TASKS[TASK].negative_phrases[0]}
    train_turns = {render(TASK, text): gold[label] for text, label in zip(train["text"], train["label"])}
    test_prompts = {render(TASK, text) for text in test["text"]}
    assert len(script.chats) == len(test) and script.statuses == [200] * len(test)
    for messages in script.chats:
        *examples, question = messages
        assert [m["role"] for m in examples] == ["user", "assistant"] * 2
        assert {answer["content"].rstrip(".").lower() for answer in examples[1::2]} == {phrase.lower() for phrase in gold.values()}
        for turn, answer in zip(examples[::2], examples[1::2]):
            assert turn["content"] in train_turns and turn["content"] not in test_prompts
            assert answer["content"].rstrip(".").lower() == train_turns[turn["content"]].lower()
        assert question == {"role": "user", "content": question["content"]} and question["content"] in test_prompts
    assert sorted(messages[-1]["content"] for messages in script.chats) == sorted(test_prompts)

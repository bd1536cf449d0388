"""What the pipeline needs of a backend: its entry type, the revision of a model's weights,
the settings that describe it, and its predictions for a batch of test prompts."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from medassets.core.asking import task_choices, task_requests, threshold_rows, train_requests
from medassets.core.cache import AnswerSettings, Cache
from medassets.core.registry import BACKENDS, GeneratingEntry, ModelEntry
from medassets.engines.answering import Engine, Report, SharedEngine, predict, wait_for_closing_engines
from medassets.weights.sources import chat_template


@dataclass(frozen=True)
class Batch:
    """One entry's share of a run: its tasks' test prompts (every variant's) and splits (the
    train rows the examples come from)."""

    spec: ModelEntry
    prompts: Mapping[str, pd.DataFrame]  # by task
    splits: Mapping[str, pd.DataFrame]  # by task


@dataclass(frozen=True)
class Predictions:
    frames: dict[str, pd.DataFrame]  # by task, with answers.PREDICTION_COLUMNS
    metadata: dict[str, Any]  # shared by the model's partitions in this batch


class Backend(ABC):
    name: ClassVar[str]  # the registry's `backend` value
    entry_type: ClassVar[type[ModelEntry]]  # its registry entry

    @abstractmethod
    def revision(self, spec) -> str:
        """What identifies the weights (or the fitted method), known without loading them."""

    def describe(self, spec) -> dict[str, Any]:
        """The model's settings that matter to a reader of its predictions' metadata."""
        return {}

    def engine_settings(self, spec) -> dict[str, Any]:
        """What the engine is built from: entries equal in it share one engine in a run."""
        return {}

    @abstractmethod
    def predict(self, batches: Sequence[Batch], *, models_dir: Path, open_cache: Callable[[], Cache], report: Report) -> dict[str, Predictions]:
        """Each batch's predictions, by entry name; the batches' entries share `engine_settings`."""


class GeneratingBackend(Backend):
    """A backend whose engine generates text: answers go through the response cache."""

    @abstractmethod
    def weights_folder(self, spec, models_dir: Path) -> Path | None:
        """The local folder of the weights, when the engine reads one."""

    @abstractmethod
    def open_engine(self, spec, folder: Path | None) -> Engine:
        """A running engine built from the entry's `engine_settings`; the caller closes it."""

    def predict(self, batches, *, models_dir, open_cache, report) -> dict[str, Predictions]:
        """One engine, opened at the first answer not cached, for every batch."""
        first = batches[0].spec
        folder = self.weights_folder(first, models_dir)
        results = {}
        cache = open_cache()
        try:
            with SharedEngine(lambda: self.open_engine(first, folder), report) as engine:
                for batch in batches:
                    results[batch.spec.name] = self._predict_batch(batch, folder, engine, cache, report)
        finally:
            cache.close()
        return results

    def _predict_batch(self, batch: Batch, folder: Path | None, engine: SharedEngine, cache: Cache, report: Report) -> Predictions:
        spec: GeneratingEntry = batch.spec
        template = chat_template(spec.chat_template_text, folder)
        revision = self.revision(spec)  # once: a content fingerprint reads every byte of the weights
        settings = AnswerSettings(answer_key=_answer_key(spec, revision), chat_template_hash=template.hash)
        asking = {"variant": spec.variant, "shots": spec.shots, "shot_seed": spec.shot_seed, "system_prompt": spec.system_prompt}
        scoring = spec.scoring == "likelihood"
        reply_prefix = None if scoring else spec.reply_prefix  # phrases are scored as the reply's beginning
        items = {
            task: task_requests(
                task, prompts, batch.splits[task], **asking, choices=task_choices(task, spec.decoding, spec.scoring), reply_prefix=reply_prefix
            )
            for task, prompts in batch.prompts.items()
        }
        answering = {"settings": settings, "sampling": spec.sampling, "chat_template": template.text, "cache": cache, "engine": engine,
                     "report": report, "scoring": scoring}
        frames, stats = predict(items, **answering, samples=spec.samples)
        if stats.cache_misses == 0:
            report(f"{spec.name}: every answer came from the cache; nothing was generated")
        metadata = self.describe(spec) | stats.metadata() | {
            "model_revision": revision, "answer_key": settings.answer_key, "backend": self.name,
            "batch_tasks": len(batch.prompts), "sampling": spec.sampling.model_dump(mode="json"),
            "chat_template_hash": template.hash, "variant": spec.variant, "shots": spec.shots,
            "shot_seed": spec.shot_seed, "decoding": spec.decoding, "scoring": spec.scoring,
            "samples": spec.samples,
            "preset": spec.preset, "reasoning": spec.reasoning, "reply_prefix": reply_prefix, "system_prompt": spec.system_prompt is not None,
        }
        if scoring and spec.threshold_rows != 0:  # train rows scored too: the labels stage learns a cut-off on them
            train = {task: threshold_rows(batch.splits[task], spec.threshold_rows, seed=0) for task in batch.prompts}
            report(f"{spec.name}: scoring {sum(map(len, train.values()))} train rows, on which each task's cut-off is learned")
            train_items = {
                task: train_requests(task, rows, batch.splits[task], **asking, choices=task_choices(task, spec.decoding, spec.scoring))
                for task, rows in train.items()
            }
            train_frames, train_stats = predict(train_items, **answering, part="train")
            frames = {task: pd.concat([frame, train_frames[task]], ignore_index=True) for task, frame in frames.items()}
            metadata |= {"threshold_train_rows": train_stats.total, "threshold_train_cache_hits": train_stats.cache_hits}
        return Predictions(frames, metadata)


def backend_for(spec: ModelEntry) -> Backend:
    """The backend of a registry entry, its module imported on first use."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"model {spec.name!r}: {spec.backend!r} is not a backend; backends: {sorted(BACKENDS)}")
    return import_module(BACKENDS[spec.backend]).BACKEND


def answer_key(spec: ModelEntry) -> str:
    """Equal for two registry entries exactly when they give the same answers to the same
    messages: the backend, the revision of the weights and every setting that can change an
    answer (`ModelEntry.answer_neutral` lists those that cannot), never the entry's name.

    The engine's version (vLLM's) is left out on purpose: the key must be the same where the
    engine is not installed (the UI's code server, the Kubernetes launcher) as where it runs,
    and a patch release would otherwise regenerate every answer. After an engine upgrade the
    cached answers are reused; delete the cache to regenerate them with the new engine."""
    return _answer_key(spec, backend_for(spec).revision(spec))


def _answer_key(spec: ModelEntry, revision: str) -> str:
    return _identity(spec.backend, {"backend": spec.backend, "weights": revision, "settings": spec.answer_settings()})


def output_version(spec: ModelEntry) -> str:
    """Changes exactly when an entry's predictions are stale: its answer key (the weights'
    revision, every setting that changes an answer), how it asks (`variant`, `shots`,
    `shot_seed`, `system_prompt`), what the parser reads of it (`reasoning`), and every other
    field unless `ModelEntry.output_neutral` declares it neutral (the name, placements,
    `gpu_memory_utilization`). It is the data version of the entry's `model_weights` partition."""
    return _identity(spec.backend, {"answers": answer_key(spec), "settings": spec.output_settings()})


def _identity(backend: str, identity: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{backend}-{digest[:32]}"


def engine_groups(batches: Sequence[Batch]) -> list[tuple[Backend, list[Batch]]]:
    """The batches of a run grouped by backend and engine settings, in their order: entries
    that differ only in how they ask share one engine."""
    groups: dict[str, tuple[Backend, list[Batch]]] = {}
    for batch in batches:
        backend = backend_for(batch.spec)
        key = json.dumps([backend.name, backend.engine_settings(batch.spec)], sort_keys=True)
        groups.setdefault(key, (backend, []))[1].append(batch)
    return list(groups.values())


def _predict_in_child(backend: GeneratingBackend, batches, models_dir, open_cache, messages) -> None:
    try:
        predictions = backend.predict(batches, models_dir=models_dir, open_cache=open_cache, report=lambda line: messages.put(("log", line)))
        wait_for_closing_engines()
        messages.put(("result", predictions))
    except BaseException as exc:  # reported to the parent, which raises it in the step
        messages.put(("error", f"{type(exc).__name__}: {exc}"))


def predict_in_own_process(
    backend: GeneratingBackend, batches: Sequence[Batch], *, models_dir: Path, open_cache: Callable[[], Cache], report: Report,
) -> dict[str, Predictions]:
    """`backend.predict` in a child process of its own, its progress relayed to `report`.

    A run that generates with several engines gives each its own process: engines loaded one
    after the other in one process leave device memory that is never released. The process
    ends, with every process its engine started, before this returns. `open_cache` must pickle
    (a `functools.partial`, not a lambda)."""
    names = ", ".join(batch.spec.name for batch in batches)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(
        target=_predict_in_child, args=(backend, list(batches), models_dir, open_cache, messages),
        name=f"medassets-predict-{batches[0].spec.name}", daemon=False,  # an engine starts processes of its own
    )
    child.start()
    outcome = None
    try:
        while outcome is None:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    child.join()
                    raise RuntimeError(f"{names}: the generation process exited with code {child.exitcode} and no answer") from None
                continue
            if kind == "log":
                report(payload)
            else:
                outcome = (kind, payload)
    except BaseException:  # the step interrupted (the run terminated, SIGTERM): the child's answers so far are cached
        child.terminate()
        raise
    finally:
        child.join()
    kind, payload = outcome
    if kind == "error":
        raise RuntimeError(f"{names}: generation failed in its own process: {payload}")
    return payload

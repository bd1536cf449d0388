"""What the review page reads: the pipeline's asset files (through `AssetStorage`, local or a
shared store), the models and ensembles of the Dagster instance (its dynamic partitions; the
registry's entries when DAGSTER_HOME is unset) and the runs that materialized their labels, the
registry entries' prompt settings, and the adjudications in the response cache's database.

A task's label frames are read once and kept until one of their files changes (fsspec's
`ukey` of each file: its modification time and size, or an object store's ETag)."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass

import fsspec
import pandas as pd

from medassets import paths
from medassets.core import review
from medassets.core.adjudication import open_adjudications
from medassets.core.answers import part_of, samples_of
from medassets.core.asking import task_choices, task_requests
from medassets.core.labels import majority_labels
from medassets.core.registry import EnsembleModel, GeneratingEntry, load_registry
from medassets.defs.io import AssetStorage
from medassets.defs.partitions import ensemble_partitions, model_partitions, partition_key, registered_partitions


@dataclass(frozen=True)
class Answer:
    """One model's answer to one item, for the item page."""

    model: str
    cell: str
    answer: str | None
    reasoning: str | None
    raw: str | None
    score: float | None  # a scored answer is its score (the positive answer's probability), with no text
    invalid_reason: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    setup: str
    messages: list[dict[str, str]]
    votes: str | None
    samples: list[SampleAnswer]  # a model asked several samples per item: each one's answer (the fields above: the majority's, sample 0's raw answer)


@dataclass(frozen=True)
class SampleAnswer:
    """One of a model's samples of its answer to an item."""

    sample: int
    seed: int | None
    cell: str  # its label: 1, 0 or `invalid: <reason>`
    answer: str | None  # the parsed answer text
    finish_reason: str | None


@dataclass(frozen=True)
class Source:
    """Where one model's labels on a task came from: the asset, its partition, and the run of
    its latest materialization (None without a Dagster instance, or none recorded)."""

    model: str
    asset: str
    partition: str
    run_id: str | None


class ReviewState:
    def __init__(self, storage: AssetStorage | None = None):
        self.storage = storage or AssetStorage()
        self.adjudications = open_adjudications(paths.postgres_url(), paths.cache_path())
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[tuple, review.TaskItems, list[Source]]] = {}
        self._texts: dict[str, tuple[str, pd.Series]] = {}

    def evaluated(self) -> tuple[list[str], list[str]]:
        """The models and the ensembles, each sorted: the Dagster instance's partitions, or the registry's."""
        if paths.dagster_home():
            from dagster import DagsterInstance

            with DagsterInstance.get() as instance:
                return (sorted(instance.get_dynamic_partitions(model_partitions.name)),
                        sorted(instance.get_dynamic_partitions(ensemble_partitions.name)))
        registered = registered_partitions(load_registry(paths.registry_path()))
        return sorted(registered[model_partitions.name]), sorted(registered[ensemble_partitions.name])

    def _label_files(self, task: str) -> dict[str, tuple[str, list[str]]]:
        """model -> (labels asset, parts) of every stored labels file of the task."""
        models, ensembles = self.evaluated()
        found = {}
        for asset, names in (("parsed_labels", models), ("ensemble_labels", ensembles)):
            for name in names:
                if self.storage.exists(asset, [name, task]):
                    found[name] = (asset, [name, task])
        return found

    def _signature(self, asset: str, parts: list[str]) -> str:
        fs, path = fsspec.core.url_to_fs(self.storage.path(asset, parts))
        return fs.ukey(path) if fs.isfile(path) else ""

    def task_items(self, task: str) -> review.TaskItems | None:
        """The task's items by model (None when no model has labels on it), read again when a file changed."""
        files = self._label_files(task)
        if not files:
            return None
        predictions = {name: ("predictions", parts) for name, (asset, parts) in files.items() if asset == "parsed_labels"}
        signature = tuple(sorted(
            (name, asset, self._signature(asset, parts)) for source in (files, predictions) for name, (asset, parts) in source.items()
        ))
        with self._lock:
            cached = self._tasks.get(task)
            if cached and cached[0] == signature:
                return cached[1]
        labels = {
            name: majority_labels(self.storage.read(asset, parts))[["id", "gold", "label", "invalid_reason"]] for name, (asset, parts) in files.items()
        }
        finish = {
            name: self.storage.read(asset, parts)[["id", "finish_reason"]]
            for name, (asset, parts) in predictions.items() if self.storage.exists(asset, parts)
        }
        items = review.task_items(labels, finish)
        sources = self._sources(task, files)
        with self._lock:
            self._tasks[task] = (signature, items, sources)
        # What the server holds from now on (the items, and every module and frame loaded to read
        # them) leaves the collector's full passes, which otherwise took 0.2 s of a request at
        # 30 models on 2 cores. What it later drops is still freed, by reference counting.
        gc.freeze()
        return items

    def sources(self, task: str) -> list[Source]:
        """Where the task's labels, as `task_items` last read them, came from, by model."""
        with self._lock:
            cached = self._tasks.get(task)
        return cached[2] if cached else []

    def _sources(self, task: str, files: dict[str, tuple[str, list[str]]]) -> list[Source]:
        keys = {name: (asset, partition_key(name, task)) for name, (asset, _) in sorted(files.items())}
        runs: dict[str, str | None] = dict.fromkeys(keys)
        if paths.dagster_home():
            from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

            with DagsterInstance.get() as instance:
                for name, (asset, key) in keys.items():
                    found = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=1)
                    runs[name] = found.records[0].run_id if found.records else None
        return [Source(name, asset, key, runs[name]) for name, (asset, key) in keys.items()]

    def texts(self, task: str) -> pd.Series:
        """The task's texts by id, from the split (empty when it is not stored), read again when its file changed."""
        if not self.storage.exists("split", [task]):
            return pd.Series(dtype=object)
        signature = self._signature("split", [task])
        with self._lock:
            cached = self._texts.get(task)
            if cached and cached[0] == signature:
                return cached[1]
        split = self.storage.read("split", [task])
        texts = pd.Series(split["text"].astype(str).to_numpy(), index=split["id"].astype(str).to_numpy())
        with self._lock:
            self._texts[task] = (signature, texts)
        return texts

    def text(self, task: str, item_id: str) -> str | None:
        """The item's text, from the split (None when the split is not stored or lacks the item)."""
        return self.texts(task).get(item_id)

    def answers(self, task: str, item_id: str, items: review.TaskItems) -> list[Answer]:
        """Each model's answer to the item, with what it was asked."""
        row = int(items.ids.searchsorted(item_id))
        registry = load_registry(paths.registry_path())
        files = self._label_files(task)
        prompts = self.storage.read("prompts", [task]) if self.storage.exists("prompts", [task]) else None
        split = self.storage.read("split", [task]) if self.storage.exists("split", [task]) else None
        answers = []
        for column, model in enumerate(items.models):
            asset, parts = files.get(model, ("parsed_labels", [model, task]))
            labels = self.storage.read(asset, parts) if model in files else pd.DataFrame(columns=["id"])
            own = labels[labels["id"] == item_id]
            parsed = majority_labels(own).iloc[0].to_dict() if len(own) else {}
            generated = pd.DataFrame(columns=["sample"])
            if asset == "parsed_labels" and self.storage.exists("predictions", parts):
                predictions = part_of(self.storage.read("predictions", parts), "test")
                generated = predictions[predictions["id"] == item_id].assign(sample=lambda frame: samples_of(frame)).set_index("sample")
            first = generated.loc[0].to_dict() if 0 in generated.index else {}
            spec = registry.get(model)
            messages = []
            if isinstance(spec, GeneratingEntry) and prompts is not None and split is not None:
                asked = task_requests(
                    task, prompts[prompts["id"] == item_id], split, variant=spec.variant, shots=spec.shots,
                    shot_seed=spec.shot_seed, system_prompt=spec.system_prompt, choices=task_choices(task, spec.decoding, spec.scoring),
                )
                messages = asked.requests[0].messages if asked.requests else []
            setup = (spec.prompt_setup or "") if spec is not None else "not in the registry"
            if isinstance(spec, EnsembleModel):
                setup = f"{spec.rule} vote of {', '.join(spec.members)}"
            answers.append(Answer(
                model=model, cell=review.answer_cell(items, row, column),
                answer=_present(parsed.get("answer")), reasoning=_present(parsed.get("reasoning")),
                raw=_present(first.get("text")) or None, score=_score(parsed.get("score")),
                invalid_reason=_present(parsed.get("invalid_reason")),
                finish_reason=_present(first.get("finish_reason")),
                prompt_tokens=_number(first.get("prompt_tokens")), completion_tokens=_number(first.get("completion_tokens")),
                setup=setup, messages=messages, votes=_present(parsed.get("votes")),
                samples=_sample_answers(own, generated) if len(own) > 1 else [],
            ))
        return answers


def _sample_answers(labels: pd.DataFrame, generated: pd.DataFrame) -> list[SampleAnswer]:
    """Each sample's answer to one item, in sample order, from its parsed labels and its predictions (by sample)."""
    answers = []
    for row in labels.sort_values("sample").itertuples(index=False):
        answer = generated.loc[row.sample].to_dict() if row.sample in generated.index else {}
        answers.append(SampleAnswer(
            sample=int(row.sample), seed=_number(answer.get("seed")), cell=review.label_cell(int(row.label), _present(row.invalid_reason) or ""),
            answer=_present(row.answer), finish_reason=_present(answer.get("finish_reason")),
        ))
    return answers


def _present(value) -> str | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else str(value)


def _score(value) -> float | None:
    text = _present(value)
    return None if text is None else float(text)


def _number(value) -> int | None:
    text = _present(value)
    return None if text is None else int(float(text))

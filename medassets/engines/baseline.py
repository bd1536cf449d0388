"""The supervised baseline as a backend: fit on each task's train split, predict its test
prompts, and answer with the task's own phrase so its answers parse like any model's."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from pydantic import Field

from medassets.core.generation import Generation, TaskRequests, prediction_frames
from medassets.core.baseline import answer_phrase, fit_predict
from medassets.core.prompts import variant_prompts
from medassets.core.registry import ModelEntry
from medassets.engines.base import Backend, Predictions

REVISION = "tfidf-logreg-v1"


class BaselineModel(ModelEntry):
    """The supervised baseline: TF-IDF and class-weighted logistic regression, fit on each train split."""

    backend: Literal["baseline"] = "baseline"
    seed: int = Field(0, description="Random state of the logistic regression; default 0.")
    reasoning: ClassVar[bool] = False


class BaselineBackend(Backend):
    name = "baseline"
    entry_type = BaselineModel

    def revision(self, spec: BaselineModel) -> str:
        return REVISION

    def describe(self, spec: BaselineModel) -> dict:
        return {"seed": spec.seed}

    def predict(self, batches, *, models_dir, open_cache, report) -> dict[str, Predictions]:
        results = {}
        for batch in batches:
            started = time.monotonic()
            generations, items = [], {}
            for task, task_prompts in batch.prompts.items():
                test = variant_prompts(task_prompts)
                items[task] = TaskRequests(test["id"].tolist(), test["prompt_hash"].tolist(), ())
                split = batch.splits[task]
                train = split[split["part"] == "train"]
                test_text = split.set_index("id").loc[test["id"], "text"]
                labels = fit_predict(train["text"], train["label"], test_text, seed=batch.spec.seed)
                generations += [Generation(answer_phrase(task, label), None, "stop", 0, 0) for label in labels]
            metadata = self.describe(batch.spec) | {
                "model_revision": REVISION, "backend": self.name, "wall_s": round(time.monotonic() - started, 2),
            }
            results[batch.spec.name] = Predictions(prediction_frames(items, generations), metadata)
        return results


BACKEND = BaselineBackend()

"""The supervised baseline as a backend: fit on each task's train split, predict its test
prompts, and answer with the task's own phrase so its answers parse like any model's."""

from __future__ import annotations

import time

from medassets.core.baseline import answer_phrase, fit_predict
from medassets.core.generation import Generation, TaskRequests, prediction_frames
from medassets.core.prompts import variant_prompts
from medassets.engines.base import Backend, Predictions

REVISION = "tfidf-logreg-v1"


class BaselineBackend(Backend):
    name = "baseline"

    def revision(self, spec) -> str:
        return REVISION

    def describe(self, spec) -> dict:
        return {"seed": spec.seed}

    def predict(self, spec, prompts, splits, *, models_dir, open_cache, report) -> Predictions:
        started = time.monotonic()
        generations, items = [], {}
        for task, task_prompts in prompts.items():
            test = variant_prompts(task_prompts)
            items[task] = TaskRequests(test["id"].tolist(), test["prompt_hash"].tolist(), ())
            split = splits[task]
            train = split[split["part"] == "train"]
            test_text = split.set_index("id").loc[test["id"], "text"]
            labels = fit_predict(train["text"], train["label"], test_text, seed=spec.seed)
            generations += [Generation(answer_phrase(task, label), None, "stop", 0, 0) for label in labels]
        metadata = self.describe(spec) | {
            "model_revision": REVISION, "backend": self.name, "wall_s": round(time.monotonic() - started, 2),
        }
        return Predictions(prediction_frames(items, generations), metadata)

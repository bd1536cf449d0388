"""The supervised baseline as a backend: fit on each task's train split, predict its test
prompts, and answer with the task's own phrase so its answers parse like any model's."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import ClassVar, Literal

from pydantic import Field

from medassets.core.generation import SCORED, Generation, TaskRequests, prediction_frames
from medassets.core.baseline import answer_phrase, fit_scores, probability_logprobs
from medassets.core.prompts import variant_prompts
from medassets.core.registry import ModelEntry
from medassets.engines.base import Backend, Predictions, learned_threshold

REVISION = "tfidf-logreg-v2"  # v2: scored, with a learned cut-off
ENGINE = f"scikit-learn {version('scikit-learn')}"  # read without importing it: reading the registry imports no engine


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
            generations, items, thresholds = [], {}, {}
            for task, task_prompts in batch.prompts.items():
                test = variant_prompts(task_prompts)
                items[task] = TaskRequests(test["id"].tolist(), test["prompt_hash"].tolist(), ())
                split = batch.splits[task]
                train = split[split["part"] == "train"]
                test_text = split.set_index("id").loc[test["id"], "text"]
                scores, train_scores = fit_scores(train["text"], train["label"], test_text, seed=batch.spec.seed)
                # The likelier class, as the classifier's own predict() calls it.
                generations += [
                    Generation(answer_phrase(task, int(score > 0.5)), None, SCORED, 0, 0, probability_logprobs(score), ENGINE) for score in scores
                ]
                thresholds[task] = float("nan") if train_scores is None else learned_threshold(train["label"], train_scores)
            metadata = self.describe(batch.spec) | {
                "model_revision": REVISION, "backend": self.name, "wall_s": round(time.monotonic() - started, 2),
            }
            frames = prediction_frames(items, generations)
            for task, frame in frames.items():
                frame["learned_threshold"] = thresholds[task]
            results[batch.spec.name] = Predictions(frames, metadata)
        return results


BACKEND = BaselineBackend()

"""The supervised baseline as a backend: fit on each task's train split, score its test
prompts (and, cross-validated, its train rows): its answers are scores, as a scored model's."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import ClassVar, Literal

import pandas as pd
from pydantic import Field

from medassets.core.answers import SCORED, Generation, prediction_frames
from medassets.core.asking import TaskRequests
from medassets.core.baseline import fit_scores, probability_logprobs
from medassets.core.prompts import variant_prompts
from medassets.core.registry import ModelEntry
from medassets.engines.base import Backend, Predictions

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
            frames = {}
            for task, task_prompts in batch.prompts.items():
                test = variant_prompts(task_prompts)
                split = batch.splits[task]
                train = split[split["part"] == "train"]
                test_text = split.set_index("id").loc[test["id"], "text"]
                scores, train_scores = fit_scores(train["text"], train["label"], test_text, seed=batch.spec.seed)
                # Its train rows' scores are cross-validated (none with a class of one row): the labels stage learns a cut-off on them.
                parts = [("test", test["id"], test["prompt_hash"], scores)]
                if train_scores is not None:
                    parts.append(("train", train["id"], [""] * len(train), train_scores))
                frames[task] = pd.concat([
                    prediction_frames({task: TaskRequests(list(ids), list(hashes), ())}, [_scored(score) for score in part_scores], part)[task]
                    for part, ids, hashes, part_scores in parts
                ], ignore_index=True)
            metadata = self.describe(batch.spec) | {
                "model_revision": REVISION, "backend": self.name, "wall_s": round(time.monotonic() - started, 2),
            }
            results[batch.spec.name] = Predictions(frames, metadata)
        return results


def _scored(probability: float) -> Generation:
    """The classifier's probability of the positive class as a scored answer: its label is the likelier class, as its own predict() calls it."""
    return Generation("", None, SCORED, 0, 0, probability_logprobs(probability), ENGINE)


BACKEND = BaselineBackend()

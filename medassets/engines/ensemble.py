"""Ensembles: each item's answer is a vote of the members' parsed labels; nothing is generated.
The ensemble answers with the task's own phrase, so its predictions parse like any model's."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from medassets.core.baseline import answer_phrase
from medassets.core.ensemble import INVALID, vote
from medassets.core.generation import Generation, TaskRequests, prediction_frames
from medassets.core.prompts import variant_prompts
from medassets.core.registry import EnsembleModel
from medassets.engines.base import Backend, Predictions


class EnsembleBackend(Backend):
    name = "ensemble"

    def revision(self, spec: EnsembleModel) -> str:
        """Its members and rules; a member's new answers re-run it through `ensemble_members`."""
        settings = json.dumps(spec.model_dump(mode="json", include={"members", "rule", "tie", "invalid_member"}), sort_keys=True)
        return "ensemble-" + hashlib.sha256(settings.encode("utf-8")).hexdigest()[:16]

    def describe(self, spec: EnsembleModel) -> dict:
        return {"members": list(spec.members), "rule": spec.rule, "tie": spec.tie, "invalid_member": spec.invalid_member}

    def predict(self, spec: EnsembleModel, prompts, splits, *, models_dir, open_cache, read_labels, report) -> Predictions:
        generations, items = [], {}
        for task, task_prompts in prompts.items():
            test = variant_prompts(task_prompts)
            ids = test["id"]
            items[task] = TaskRequests(ids.tolist(), test["prompt_hash"].tolist(), ())
            votes = np.column_stack([_member_labels(spec, member, task, ids, read_labels) for member in spec.members])
            labels = vote(votes, rule=spec.rule, tie=spec.tie, invalid_member=spec.invalid_member)
            for label, row in zip(labels, votes):
                ballot = ", ".join(f"{member}={'invalid' if v == INVALID else v}" for member, v in zip(spec.members, row))
                text = "" if label == INVALID else answer_phrase(task, label)
                generations.append(Generation(text, f"votes: {ballot}", "ensemble", 0, 0))
            report(f"{spec.name} on {task}: {len(ids)} answers from {spec.rule} votes of {', '.join(spec.members)}")
        metadata = self.describe(spec) | {"model_revision": self.revision(spec), "backend": self.name}
        return Predictions(prediction_frames(items, generations), metadata)


def _member_labels(spec: EnsembleModel, member: str, task: str, ids: pd.Series, read_labels) -> np.ndarray:
    try:
        labels = read_labels(member, task).set_index("id")["label"]
    except FileNotFoundError:
        raise RuntimeError(
            f"ensemble {spec.name!r}: member {member!r} has no parsed labels on {task} yet; "
            "materialize its predictions and parsed_labels first"
        ) from None
    missing = ids[~ids.isin(labels.index)]
    if len(missing):
        raise RuntimeError(
            f"ensemble {spec.name!r}: member {member!r} has no label for {len(missing)} test items of {task} "
            f"(first: {missing.iloc[0]}); re-materialize its predictions for this split"
        )
    return labels.loc[ids].to_numpy()

"""The analysis settings: how intervals are drawn, invalid answers scored, p-values adjusted and
which gold labels count. Declared in one file (`data/analysis.yaml` by default,
MEDASSETS_ANALYSIS elsewhere), so that every run, launched or automated, computes with the same
settings; its version is the data version of the `analysis_settings` asset, and an edit
re-runs what it affects (metrics, ensemble metrics, the comparison), never the predictions.
Errors name the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medassets.core.metrics import CONFIDENCE, N_RESAMPLES


class AnalysisError(ValueError):
    """An analysis settings file that cannot be used as given."""


class AnalysisSettings(BaseModel):
    """Every field has a default: an empty file is the paper's analysis."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    n_resamples: int = Field(N_RESAMPLES, gt=0, description="Bootstrap resamples per interval; 1,000 as in the paper.")
    confidence: float = Field(
        CONFIDENCE, gt=0, lt=1, description="Confidence level of every interval; the significance level of the tests is "
        "one minus it (0.95, the default: intervals at 95%, p below 0.05 significant).",
    )
    seed: int = Field(0, description="Seed of the resampling, so intervals are reproducible; default 0.")
    invalid: Literal["negative", "exclude"] = Field(
        "negative", description="An invalid answer counts as a negative prediction (`negative`, the default) or is left out (`exclude`)."
    )
    correction: Literal["holm", "bh", "none"] = Field(
        "holm", description="How the p-values of a pair of models are adjusted across the tasks: `holm` (family-wise error, "
        "the default), `bh` (Benjamini-Hochberg, false discovery rate) or `none`.",
    )
    gold: Literal["original", "adjudicated"] = Field(
        "original", description="Score against the dataset's `original` gold labels (the default) or the `adjudicated` ones "
        "(the review page's verdicts applied; a task nobody has judged keeps its original labels).",
    )
    pairs: Literal["every", "reference"] = Field(
        "every", description="Compare `every` pair of models (the default) or each model with the `reference`."
    )
    reference: str | None = Field(None, description="The model every other is compared with when `pairs` is `reference`.")

    @model_validator(mode="after")
    def _reference_named(self):
        if self.pairs == "reference" and not self.reference:
            raise ValueError("`pairs: reference` needs `reference`, the model every other is compared with")
        return self

    def version(self) -> str:
        """Changes exactly when a setting does (not with comments or the order of the fields)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def with_overrides(self, overrides: dict) -> AnalysisSettings:
        """These settings with some replaced (a launched run's config), validated again."""
        try:
            return AnalysisSettings.model_validate(self.model_dump() | overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise AnalysisError(f"run config `{'.'.join(map(str, first['loc'])) or 'settings'}`: {first['msg']}") from None


def _key_line(root: yaml.Node | None, field: str) -> int:
    """The line of `field`'s key in the document, or 1."""
    if isinstance(root, yaml.MappingNode):
        for key, _ in root.value:
            if key.value == field:
                return key.start_mark.line + 1
    return 1


def parse_analysis(text: str, where: str = "<analysis settings>") -> AnalysisSettings:
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise AnalysisError(f"{where}: not valid YAML: {exc}") from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise AnalysisError(f"{where}:1: the analysis settings are a mapping of setting to value")
    try:
        return AnalysisSettings.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        line = _key_line(root, field)
        if first["type"] == "extra_forbidden":
            raise AnalysisError(f"{where}:{line}: unknown setting {field!r}; known: {sorted(AnalysisSettings.model_fields)}") from None
        if first["type"] == "value_error":  # a rule across settings (`pairs: reference` without `reference`)
            raise AnalysisError(f"{where}:{_key_line(root, 'pairs')}: {first['ctx']['error']}") from None
        subject = f"`{field}`: " if field else ""
        given = f" (given: {first['input']!r})" if field else ""
        raise AnalysisError(f"{where}:{line}: {subject}{first['msg']}{given}") from None


def load_analysis(path: Path) -> AnalysisSettings:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: cannot read the analysis settings: {exc}") from exc
    return parse_analysis(text, str(path))

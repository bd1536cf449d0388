"""The analysis settings file as an observed asset, and the run config that may override it for one run."""

from enum import Enum
from typing import get_args

from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, ObserveResult, observable_source_asset
from pydantic import Field

from medassets import paths
from medassets.core.analysis import AnalysisSettings, load_analysis

_FIELDS = AnalysisSettings.model_fields


def _from_file(name: str) -> str:
    return f"{_FIELDS[name].description} Unset: the analysis settings file's (data/analysis.yaml)."


def _choices(name: str) -> type[Enum]:
    """A setting's choices as an Enum, which Dagster's config (and so the launchpad) takes optional."""
    return Enum(name, {value: value for value in get_args(_FIELDS[name].annotation)})


InvalidPolicy, Correction, Gold, Pairs = (_choices(name) for name in ("invalid", "correction", "gold", "pairs"))


class AnalysisConfig(Config):
    """A launched run's overrides of the analysis settings file, each for this run alone (recorded in its metadata)."""

    n_resamples: int | None = Field(None, gt=0, description=_from_file("n_resamples"))
    confidence: float | None = Field(None, gt=0, lt=1, description=_from_file("confidence"))
    seed: int | None = Field(None, description=_from_file("seed"))
    invalid: InvalidPolicy | None = Field(None, description=_from_file("invalid"))
    correction: Correction | None = Field(None, description=_from_file("correction"))
    gold: Gold | None = Field(None, description=_from_file("gold"))
    pairs: Pairs | None = Field(None, description=_from_file("pairs"))
    reference: str | None = Field(None, description=_from_file("reference"))

    def settings(self, context: AssetExecutionContext, output_name: str | None = None) -> AnalysisSettings:
        """The file's settings with this run's overrides, which the metadata of the step's output
        (`output_name`, where it has several) records."""
        overrides = {name: value.value if isinstance(value, Enum) else value for name, value in self.model_dump().items() if value is not None}
        settings = load_analysis(paths.analysis_path()).with_overrides(overrides)
        context.add_output_metadata({
            "analysis_file": MetadataValue.path(str(paths.analysis_path())),
            "analysis_version": settings.version(),
            "analysis_overrides": MetadataValue.json(overrides),
        }, output_name=output_name)
        if overrides:
            context.log.info(f"analysis settings of this run: the file's, with {overrides}")
        return settings


@observable_source_asset(
    group_name="evaluation",
    description="The analysis settings (resamples, confidence, seed, invalid-answer policy, correction, gold labels, pairs), "
    "observed from their file (MEDASSETS_ANALYSIS, default data/analysis.yaml): an edit makes the metrics, the ensembles' "
    "metrics and the comparison stale, never the predictions.",
)
def analysis_settings() -> ObserveResult:
    path = paths.analysis_path()
    settings = load_analysis(path)
    return ObserveResult(
        data_version=DataVersion(settings.version()),
        metadata={"file": MetadataValue.path(str(path)), "settings": MetadataValue.json(settings.model_dump(mode="json"))},
    )

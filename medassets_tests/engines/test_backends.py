"""The backends: found by name and imported only when used, what each says of its models,
the answer key that decides which cached answers an entry may reuse, and the baseline's
predictions, which parse like a model's."""

import subprocess
import sys
from pathlib import Path

import pytest

from medassets.core.datasets import DatasetSource, load_dataset
from medassets.core.asking import Request
from medassets.core.cache import AnswerSettings, cache_key
from medassets.core.prompts import render_prompts, variant_prompts
from medassets.core.registry import BACKENDS, Settings, entry_type, parse_registry
from medassets.core.splitting import stratified_split
from medassets.engines import Batch, answer_key, backend_for, engine_groups, output_version
from medassets.engines.base import GeneratingBackend

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
REPO = Path(__file__).resolve().parents[2]


def spec(entry: str, name: str = "m"):
    return parse_registry(f"models:\n  - name: {name}\n    {entry}\n")[name]


def test_every_backend_owns_its_entry_type_under_its_name():
    for name in BACKENDS:
        backend = backend_for(spec(f"backend: {name}" + ("\n    source: {path: /w}" if name == "vllm" else "")))
        assert backend.name == name
        assert entry_type(name) is backend.entry_type
        assert backend.entry_type.model_fields["backend"].default == name


def test_an_unknown_backend_lists_the_registered_names():
    with pytest.raises(ValueError, match=r"backend must be one of baseline, ensemble, openai, vllm \(given: 'tgi'\)"):
        spec("backend: tgi")


def test_reading_the_registry_and_building_a_run_imports_no_engine():
    """The UI's code server and the Kubernetes launcher load the definitions, read the
    registry and take each model's answer key and GPUs without vLLM, torch or scikit-learn."""
    code = (
        "import sys\n"
        "from medassets.definitions import defs\n"
        "from medassets.core.registry import parse_registry\n"
        "from medassets.defs.kubernetes import k8s_config\n"
        "from medassets.engines import answer_key\n"
        "models = parse_registry('models:\\n  - {name: big, source: {hub: org/m, revision: v1}, tensor_parallel_size: 4}\\n"
        "  - {name: served, backend: openai}\\n  - {name: tfidf, backend: baseline}\\n')\n"
        "assert k8s_config(models.values())['container_config']['resources'] == {'limits': {'nvidia.com/gpu': 4}}\n"
        "[answer_key(m) for m in models.values() if m.name != 'big']\n"
        "print(sorted(m for m in ('vllm', 'torch', 'sklearn', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "entry, gpus",
    [
        ("source: {path: /w}\n    tensor_parallel_size: 4", 4), ("source: {path: /w}", 1), ("backend: openai", 0),
        ("backend: baseline", 0),
    ],
)
def test_gpus_per_model(entry, gpus):
    assert spec(entry).gpus == gpus


@pytest.mark.parametrize(
    "entry, revision",
    [
        ("backend: openai", "served-m@http://127.0.0.1:8000/v1"),
        ("backend: openai\n    server: {served_model: llama, base_url: 'http://10.0.0.2:8000/v1'}", "served-llama@http://10.0.0.2:8000/v1"),
        ("backend: openai\n    source: {hub: org/absent, revision: v2}", "hub-v2"),  # served elsewhere
        ("backend: baseline", "tfidf-logreg-v2"),
    ],
)
def test_revisions_known_without_local_weights(entry, revision, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model = spec(entry)
    assert backend_for(model).revision(model) == revision


# A changed value for every field of every entry type (nested settings by their path). A field
# added to an entry type fails the test below until it is listed here, and so until someone
# decides whether it can change an answer.
CHANGED = {
    "backend": None, "name": "renamed", "kubernetes": {"node_selector": {"gpu": "h100"}},
    "slurm": {"partition": "gpu", "memory": "64G"},
    "reasoning": True, "system_prompt": "Be brief.", "reply_prefix": "<think>\n", "preset": "qwen3", "chat_template": "TEMPLATE", "fingerprint": "content",
    "sampling.temperature": 0.7, "sampling.top_p": 0.5, "sampling.max_tokens": 9, "sampling.seed": 3, "sampling.stop": ["x"],
    "sampling.top_k": 20, "sampling.min_p": 0.05,
    "variant": "concise", "shots": 2, "shot_seed": 1, "decoding": "constrained", "scoring": "likelihood", "threshold_rows": 50,
    "source": {"path": "OTHER_WEIGHTS"}, "dtype": "bfloat16", "max_model_len": 4096, "quantization": "fp8",
    "tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
    "server.base_url": "http://10.0.0.1:8000/v1", "server.api_key_env": "OTHER_KEY", "server.served_model": "other",
    "server.max_concurrency": 2, "server.timeout_s": 5.0, "server.max_retries": 0,
    "seed": 1, "samples": 3,
}
# What each backend's answers depend on; every other field must keep the key. `fingerprint`
# changes no answer, but it changes how the weights' revision is taken (a quick fingerprint or
# every byte), and so the key: switching it costs one regeneration, never a stale answer;
# `threshold_rows` changes the learned cut-off recorded with the answers, not the answers;
# a `preset` changes the sampling in effect (its name alone changes nothing: test_registry).
ANSWER_CHANGING = {
    "vllm": {"preset", "fingerprint", "chat_template", "sampling.temperature", "sampling.top_p", "sampling.max_tokens", "sampling.seed", "sampling.stop",
             "sampling.top_k", "sampling.min_p", "decoding", "scoring", "threshold_rows", "source", "dtype", "max_model_len", "quantization",
             "tensor_parallel_size"},
    # without a source, the served model's name at the server's address is what identifies the weights
    "openai": {"preset", "chat_template", "sampling.temperature", "sampling.top_p", "sampling.max_tokens", "sampling.seed", "sampling.stop",
               "sampling.top_k", "sampling.min_p", "decoding", "scoring", "threshold_rows", "source", "server.served_model", "server.base_url"},
    "baseline": {"seed"},
}
# What makes an entry's predictions stale: what changes its answers, and how it asks (the
# messages, the start of the reply included; how many samples: each sample has a cache key of its
# own) and what the parser reads of it (`reasoning`).
ASKING = {"reasoning", "system_prompt", "reply_prefix", "variant", "shots", "shot_seed", "samples"}
OUTPUT_CHANGING = {"vllm": ANSWER_CHANGING["vllm"] | ASKING, "openai": ANSWER_CHANGING["openai"] | ASKING, "baseline": {"seed"}}


def _fields(model, prefix=""):
    for name, field in model.model_fields.items():
        nested = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, Settings) else None
        if nested is not None and name not in ("kubernetes", "slurm"):  # placements, changed whole
            yield from _fields(nested, f"{prefix}{name}.")
        else:
            yield prefix + name


def _entry(backend: str, tmp_path: Path, **fields) -> dict:
    base = {"name": "m", "backend": backend}
    if backend == "vllm":
        base["source"] = {"path": str(tmp_path / "weights")}
    if backend == "openai":
        base["server"] = {"served_model": "m"}
    for path, value in fields.items():
        if value == "TEMPLATE":
            (tmp_path / "template.jinja").write_text("{{ messages }}")
            value = str(tmp_path / "template.jinja")
        if value == {"path": "OTHER_WEIGHTS"}:
            value = {"path": str(tmp_path / "other")}
        head, _, tail = path.partition(".")
        if tail:
            base.setdefault(head, {})[tail] = value
        else:
            base[head] = value
    return base


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_answer_key_changes_exactly_with_what_changes_answers(backend, tmp_path, monkeypatch):
    """Each answer-changing field, changed, changes the answer key, and so every cache key
    (a miss) and the model's observed revision (its predictions stale); every other field
    keeps both (cached answers are reused)."""
    monkeypatch.setenv("MEDASSETS_OPENAI_BASE_URL", "")
    for folder, config in (("weights", "{}"), ("other", '{"hidden_size": 8}')):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(config)
    model = entry_type(backend)
    fields = set(_fields(model))
    assert fields <= set(CHANGED), f"decide whether these fields can change an answer: {sorted(fields - set(CHANGED))}"
    original = model.model_validate(_entry(backend, tmp_path))
    request = Request([{"role": "user", "content": "Is this tweet self-reporting breast cancer?"}])

    def keys(entry):
        key = answer_key(entry)
        return key, cache_key(AnswerSettings(answer_key=key, chat_template_hash="model-default"), request)

    for field in sorted(fields - {"backend"}):
        changed = model.model_validate(_entry(backend, tmp_path, **{field: CHANGED[field]}))
        if field in ANSWER_CHANGING[backend]:
            assert keys(changed)[0] != keys(original)[0] and keys(changed)[1] != keys(original)[1], field
        else:
            assert keys(changed) == keys(original), field


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_output_version_changes_exactly_with_what_makes_predictions_stale(backend, tmp_path, monkeypatch):
    """Each field that changes answers or how the entry asks, changed, changes the output version
    (the data version of its model_weights partition); a rename, a placement or the memory share keeps it."""
    monkeypatch.setenv("MEDASSETS_OPENAI_BASE_URL", "")
    for folder, config in (("weights", "{}"), ("other", '{"hidden_size": 8}')):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(config)
    model = entry_type(backend)
    original = output_version(model.model_validate(_entry(backend, tmp_path)))
    for field in sorted(set(_fields(model)) - {"backend"}):
        changed = output_version(model.model_validate(_entry(backend, tmp_path, **{field: CHANGED[field]})))
        assert (changed != original) == (field in OUTPUT_CHANGING[backend]), field


def test_renamed_copies_share_an_answer_key_and_an_engine(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    models = parse_registry(
        "models:\n"
        "  - {name: zero-shot, source: {path: W}}\n"
        "  - {name: two-shot, source: {path: W}, shots: 2, variant: concise}\n"
        "  - {name: constrained, source: {path: W}, decoding: constrained}\n"
        "  - {name: half, source: {path: W}, dtype: bfloat16}\n"
        "  - {name: tfidf, backend: baseline}\n".replace("W", str(tmp_path))
    )
    assert answer_key(models["zero-shot"]) == answer_key(models["two-shot"])  # how they ask is in the messages
    assert answer_key(models["zero-shot"]) != answer_key(models["constrained"])
    groups = engine_groups([Batch(model, {}, {}) for model in models.values()])
    assert [[batch.spec.name for batch in group] for _, group in groups] == [["zero-shot", "two-shot", "constrained"], ["half"], ["tfidf"]]


def test_an_ensemble_has_no_backend():
    models = parse_registry("models:\n  - {name: a, backend: baseline}\n  - {name: b, backend: baseline, seed: 1}\n"
                            "  - {name: vote, backend: ensemble, members: [a, b]}\n")
    with pytest.raises(ValueError, match="'ensemble' is not a backend"):
        answer_key(models["vote"])


def test_the_baseline_scores_every_test_prompt_and_its_train_rows(tmp_path):
    task = "breast_cancer"
    split = stratified_split(load_dataset(DatasetSource(path=SAMPLES / f"{task}.csv")).frame)
    prompts = render_prompts(task, split[split["part"] == "test"])
    model = spec("backend: baseline")
    backend = backend_for(model)
    assert not isinstance(backend, GeneratingBackend)  # no engine, no cache
    batch = backend.predict([Batch(model, {task: prompts}, {task: split})], models_dir=tmp_path, open_cache=None, report=print)["m"]
    frame = batch.frames[task]
    test, train = frame[frame["part"] == "test"], frame[frame["part"] == "train"]
    assert list(test["id"]) == list(variant_prompts(prompts)["id"])
    assert set(train["id"]) == set(split.loc[split["part"] == "train", "id"])  # cross-validated, for the labels stage's cut-off
    assert (frame["text"] == "").all() and (frame["label"] == (frame["score"] > 0.5)).all()  # scores, no phrase
    assert set(test["label"]) == {0, 1} and frame["engine"].str.startswith("scikit-learn ").all()
    assert batch.metadata["model_revision"] == "tfidf-logreg-v2" and batch.metadata["backend"] == "baseline"

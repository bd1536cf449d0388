"""One engine per weights, one engine per process, on real vLLM: a `generate` run over three
entries of the embedded model, two differing only in sampling and one in its engine settings
(a shorter context), starts two engines, each in a process of its own; the two that differ in
sampling share one. It completes, its peak memory is that of one engine (a run of one model
is the yardstick), the cache and metadata work as in a one-model run, and no process is left."""

import psutil
import pytest
from conftest import small_datasets
from dagster_runs import generate_range
from support import PeakRSS

from medassets.defs.partitions import partition_key
from medassets.tasks import TASK_KEYS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

ALONE, FIRST, SECOND, THIRD = "smollm-alone", "smollm-greedy", "smollm-sampled", "smollm-short-context"
REGISTRY = "models:\n" + "".join(
    f"  - name: {name}\n    source: {{embedded: {EMBEDDED_MODEL_NAME}}}\n    sampling: {sampling}\n{extra}"
    for name, sampling, extra in [
        (ALONE, "{max_tokens: 8}", ""), (FIRST, "{max_tokens: 10}", ""), (SECOND, "{max_tokens: 8, temperature: 0.7, seed: 3}", ""),
        (THIRD, "{max_tokens: 8}", "    max_model_len: 1024\n"),
    ]
)
MODELS = (FIRST, SECOND, THIRD)
ENGINE_START_LINE = "Initializing a V1 LLM engine"  # vLLM logs it once per engine


def _measured_run(workspace, run: str) -> tuple[dict, float, str, list[str]]:
    job = workspace.start(run)
    peak = PeakRSS(job.process.pid)
    (report,) = job.wait(timeout=600)
    assert report["success"], report["errors"]
    return report, peak.stop(), job.output, job.leftovers()


@pytest.fixture(scope="module")
def runs(make_workspace, tmp_path_factory):
    workspace = make_workspace(REGISTRY, datasets=small_datasets(tmp_path_factory.mktemp("small-data")))
    workspace.run(*(f"prepare_data:{task}" for task in TASK_KEYS), timeout=300)
    alone = _measured_run(workspace, generate_range(ALONE))
    both = _measured_run(workspace, generate_range(FIRST, THIRD))  # one run, three models, two engines
    return workspace, alone, both


def test_each_engine_gets_its_own_process_and_no_process_is_left(runs):
    _, alone, both = runs
    report, _, output, leftovers = both
    assert output.count(ENGINE_START_LINE) == 2, "expected one engine per weights and engine settings"
    for model in (FIRST, THIRD):  # vLLM names the process that built the engine
        assert f"(medassets-predict-{model} pid=" in output, f"{model}'s engine was not built in a process of its own"
    assert f"(medassets-predict-{SECOND} pid=" not in output  # it asked the first engine
    assert leftovers == [] and alone[3] == []
    assert not [p for p in psutil.Process().children(recursive=True) if "VLLM" in _command_line(p)]


def test_the_peak_memory_is_that_of_one_engine(runs):
    _, alone, both = runs
    print(f"peak RSS: three models {both[1]:.2f} GiB, one model {alone[1]:.2f} GiB")
    # Two engines alive at once (or one never freed) would about double it.
    assert both[1] < 1.3 * alone[1], f"three models: {both[1]:.2f} GiB; one model: {alone[1]:.2f} GiB"


def test_cache_progress_and_metadata_work_as_in_one_process(runs):
    workspace, _, both = runs
    report, _, _, _ = both
    predictions = report["materializations"]["predictions"]
    assert set(predictions) == {partition_key(model, task) for model in MODELS for task in TASK_KEYS}
    for model in MODELS:
        metadata = predictions[partition_key(model, TASK_KEYS[0])]
        assert metadata["batch_prompts"] == metadata["batch_cache_misses"] > 0
        assert metadata["batch_tasks"] == len(TASK_KEYS)
        assert (metadata["engine_start_s"] > 0) == (model != SECOND), model  # SECOND's engine was already running
        assert metadata["device"] == "cpu"
    messages = [log["message"] for log in report["logs"]]
    assert sum(message.startswith("engine started in ") for message in messages) == 2  # relayed from the children
    second_batch = predictions[partition_key(SECOND, TASK_KEYS[0])]["batch_prompts"]
    first_batch = predictions[partition_key(FIRST, TASK_KEYS[0])]["batch_prompts"]
    assert sum(message == f"sending {second_batch} prompts to the engine already running" for message in messages) == 1
    assert sum(message.startswith(f"generated {first_batch}/{first_batch} in ") for message in messages) == 3
    # every answer is in the cache, so a re-run of the three models generates nothing
    (rerun,) = workspace.run(generate_range(FIRST, THIRD))
    assert all(meta["batch_cache_misses"] == 0 for meta in rerun["materializations"]["predictions"].values())


def _command_line(process: psutil.Process) -> str:
    """A process's command line; empty for one that has ended (a zombie not yet reaped by another test's code has none)."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # ZombieProcess included
        return ""

"""One engine per process, on real vLLM: a `generate` run over two vLLM registry entries (the
embedded model twice, with different sampling) gives each model's engine a process of its
own. It completes, its peak memory is that of one engine (a run of one model is the
yardstick), the cache and metadata work as in a one-model run, and no process is left."""

import psutil
import pytest
from conftest import small_datasets
from dagster_runs import generate_range
from support import PeakRSS

from medassets.defs.partitions import partition_key
from medassets.tasks import TASK_KEYS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME

pytestmark = pytest.mark.slow

ALONE, FIRST, SECOND = "smollm-alone", "smollm-greedy", "smollm-sampled"
REGISTRY = "models:\n" + "".join(
    f"  - name: {name}\n    source: {{embedded: {EMBEDDED_MODEL_NAME}}}\n    sampling: {sampling}\n"
    for name, sampling in [(ALONE, "{max_tokens: 8}"), (FIRST, "{max_tokens: 10}"), (SECOND, "{max_tokens: 8, temperature: 0.7, seed: 3}")]
)
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
    both = _measured_run(workspace, generate_range(FIRST, SECOND))  # one run, two models
    return workspace, alone, both


def test_each_model_gets_its_own_engine_process_and_no_process_is_left(runs):
    _, alone, both = runs
    report, _, output, leftovers = both
    assert output.count(ENGINE_START_LINE) == 2, "expected one engine per model"
    for model in (FIRST, SECOND):  # vLLM names the process that built the engine
        assert f"(medassets-predict-{model} pid=" in output, f"{model}'s engine was not built in a process of its own"
    assert leftovers == [] and alone[3] == []
    assert not [p for p in psutil.Process().children(recursive=True) if "VLLM" in " ".join(p.cmdline())]


def test_the_peak_memory_is_that_of_one_engine(runs):
    _, alone, both = runs
    print(f"peak RSS: two models {both[1]:.2f} GiB, one model {alone[1]:.2f} GiB")
    # Two engines alive at once (or one never freed) would about double it.
    assert both[1] < 1.3 * alone[1], f"two models: {both[1]:.2f} GiB; one model: {alone[1]:.2f} GiB"


def test_cache_progress_and_metadata_work_as_in_one_process(runs):
    workspace, _, both = runs
    report, _, _, _ = both
    predictions = report["materializations"]["predictions"]
    assert set(predictions) == {partition_key(model, task) for model in (FIRST, SECOND) for task in TASK_KEYS}
    for model in (FIRST, SECOND):
        metadata = predictions[partition_key(model, TASK_KEYS[0])]
        assert metadata["batch_prompts"] == metadata["batch_cache_misses"] > 0
        assert metadata["batch_tasks"] == len(TASK_KEYS)
    messages = [log["message"] for log in report["logs"]]
    assert sum(message.startswith("engine started in ") for message in messages) == 2  # relayed from the children
    assert sum(message.startswith(f"generated {n}/{n} in ") for message in messages for n in [predictions[partition_key(FIRST, TASK_KEYS[0])]["batch_prompts"]]) == 2
    # every answer is in the cache, so a re-run of the two models generates nothing
    (rerun,) = workspace.run(generate_range(FIRST, SECOND))
    assert all(meta["batch_cache_misses"] == 0 for meta in rerun["materializations"]["predictions"].values())

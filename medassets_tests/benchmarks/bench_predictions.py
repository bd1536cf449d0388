"""Benchmark of the predictions asset on the embedded model (vLLM on the CPU).

    python medassets_tests/benchmarks/bench_predictions.py [--prompts N] [--max-tokens 48] [--rounds R]

On the same prompts, the test prompts of the six sample tasks (all of them by default; with
--prompts N, the first N/6 of each task: the prompts asset's files are cut after
prepare_data), in one invocation:

1. Generation throughput (completion tokens/s, engine start excluded) of the `generate` job,
   one run over the model's six tasks with a fresh cache, against bare_chat.py's `LLM.chat`
   call on the same conversations with the same engine settings, SamplingParams and thread
   environment; and their ratio (target >= 0.95). The job's figure comes from its metadata
   (batch_generated_tokens / batch_wall_s): generation only, from the first request to the
   last answer cached. With --rounds R, each side runs R times, alternating, and the medians
   are compared: on a shared 2-core machine one round's ratio has been seen from 0.70 to 1.20.
2. Wall time of a re-run served by the cache against the first run's (target < 5%).
3. Peak memory of the step: the RSS of the process running the job and all its children
   (vLLM's engine core and worker), summed, sampled every 0.5 s. Shared pages count once per
   process, so this is an upper bound. The bare call's peak, measured alike, is beside it.
4. Wall time from launch to success: the process running the `generate` job (Python's
   start, imports, Dagster's run, engine start, generation, the predictions check, exit)
   against bare_chat.py, a plain script that builds `LLM()` and calls `chat` on the same
   conversations (target: ratio <= 1.05).

Each run is a process of its own: the job through medassets_tests/dagster_runs.py, in
process as `make run` runs it. The embedded model is converted first, outside the figures
(or reused from MEDASSETS_TEST_MODELS_DIR). With all 600 sample prompts on 2 cores, one
round takes about 7 minutes, each further round about 6 more.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "medassets_tests"))
from dagster_runs import generate_range  # noqa: E402
from medassets.core.prompts import variant_prompts  # noqa: E402
from support import PeakRSS  # noqa: E402
RUNNER = REPO / "medassets_tests" / "dagster_runs.py"
MODEL = "smollm2-135m"
TASKS = ["breast_cancer", "medication_regimen_change", "adverse_pregnancy_outcome",
         "covid19_potential_case", "stigma_labeling", "medication_change_discussion"]
BARE = Path(__file__).with_name("bare_chat.py")


def run_measured(command: list[str], env: dict, log: Path) -> tuple[float, float]:
    """Runs a command to its end: (process wall s, peak RSS GiB of its tree)."""
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
        memory = PeakRSS(process.pid)
        code = process.wait()
    if code != 0:
        sys.exit(f"{command[:3]} failed ({code}); its log: {log}")
    return time.monotonic() - started, memory.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, help="this many prompts, N/6 per task (default: all test prompts)")
    parser.add_argument("--max-tokens", type=int, default=48, help="as the registry's embedded model (48)")
    parser.add_argument("--rounds", type=int, default=1, help="throughput rounds, job and bare call alternating; medians")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-predictions-"))
    models = Path(os.environ.get("MEDASSETS_TEST_MODELS_DIR") or root / "models")
    models.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    home.mkdir()
    (home / "models").symlink_to(models.resolve(), target_is_directory=True)
    registry = root / "models.yaml"
    registry.write_text(yaml.safe_dump({"models": [{
        "name": MODEL, "backend": "vllm", "source": {"embedded": "smollm2-135m-instruct"},
        "sampling": {"max_tokens": args.max_tokens},
    }]}))
    cores = len(os.sched_getaffinity(0))
    env = {name: value for name, value in os.environ.items() if not name.startswith("MEDASSETS_")} | {
        "MEDASSETS_HOME": str(home), "MEDASSETS_REGISTRY": str(registry),
        "MEDASSETS_DATASETS": str(REPO / "data" / "datasets.yaml"),
        # What VLLMEngine sets when they are unset; set here so that both sides run alike.
        "OMP_NUM_THREADS": str(cores), "VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}",
    }

    def jobs(name: str, *runs: str) -> tuple[list[dict], float, float]:
        out = root / f"{name}.json"
        command = [sys.executable, str(RUNNER), "--instance", str(root / "instance"), "--out", str(out), *runs]
        wall, peak = run_measured(command, env, root / f"{name}.log")
        reports = json.loads(out.read_text())
        failed = [r for r in reports if not r["success"]]
        if failed or len(reports) != len(runs):
            sys.exit(f"{name}: a run failed: {failed[0]['errors'] if failed else 'see log'}; log: {root / name}.log")
        return reports, wall, peak

    print(f"medassets predictions benchmark; work folder {root}", flush=True)
    jobs("prepare", *(f"prepare_data:{task}" for task in TASKS), "prepare_embedded_model")
    prompts = []
    for task in TASKS:
        path = home / "assets" / "prompts" / f"{task}.parquet"
        frame = variant_prompts(pd.read_parquet(path))
        if args.prompts:  # the subset: the first N/6 prompts of each task, in the asset's own file
            frame = frame.head(round(args.prompts / len(TASKS)))
            frame.to_parquet(path, index=False)
        prompts += frame["prompt"].tolist()
    prompts_file = root / "prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    print(f"{len(prompts)} prompts over {len(TASKS)} tasks; max_tokens {args.max_tokens}, greedy; {cores} cores", flush=True)

    generate = generate_range(MODEL)
    key = f"{MODEL}|{TASKS[0]}"

    def job_round(number: int) -> dict:
        shutil.rmtree(home / "cache", ignore_errors=True)  # a fresh cache
        load = os.getloadavg()[0]
        (report,), wall, peak = jobs(f"generate-{number}", generate)
        meta = report["materializations"]["predictions"][key]
        assert meta["batch_prompts"] == meta["batch_cache_misses"] == len(prompts), meta
        rate = meta["batch_generated_tokens"] / meta["batch_wall_s"]
        return {"rate": rate, "tokens": meta["batch_generated_tokens"], "wall_s": meta["batch_wall_s"],
                "report": report, "process_s": wall, "peak": peak, "load": load}

    def bare_round(number: int) -> dict:
        out = root / f"bare-{number}.json"
        folder = home / "models" / "smollm2-135m-instruct"
        command = [sys.executable, str(BARE), str(folder), str(prompts_file), str(args.max_tokens), str(out)]
        load = os.getloadavg()[0]
        wall, peak = run_measured(command, env, root / f"bare-{number}.log")
        result = json.loads(out.read_text())
        return result | {"rate": result["tokens"] / result["wall_s"], "process_s": wall, "peak": peak, "load": load}

    job_rounds, bare_rounds, cached = [], [], None
    for number in range(args.rounds):
        if number % 2:  # alternate the order, so that a drift of the machine does not favour one side
            bare_rounds.append(bare_round(number))
            job_rounds.append(job_round(number))
        else:
            job_rounds.append(job_round(number))
            if cached is None:
                (report,), wall, _ = jobs("generate-cached", generate)
                assert report["materializations"]["predictions"][key]["batch_cache_misses"] == 0
                cached = {"report": report, "process_s": wall}
            bare_rounds.append(bare_round(number))

    texts = [t for task in TASKS for t in pd.read_parquet(home / "assets" / "predictions" / MODEL / f"{task}.parquet")["text"]]
    same = sum(a == b for a, b in zip(texts, bare_rounds[-1]["texts"])) / len(texts)
    job_rate = statistics.median(r["rate"] for r in job_rounds)
    job_process = statistics.median(r["process_s"] for r in job_rounds)
    bare_process = statistics.median(r["process_s"] for r in bare_rounds)
    bare_rate = statistics.median(r["rate"] for r in bare_rounds)
    first = job_rounds[0]
    run_wall = first["report"]["ended"] - first["report"]["started"]
    cached_wall = cached["report"]["ended"] - cached["report"]["started"]

    print("\n1. Generation throughput (engine start excluded)")
    for number, (job, bare) in enumerate(zip(job_rounds, bare_rounds)):
        print(f"   round {number}: job {job['rate']:6.1f} tokens/s ({job['tokens']} in {job['wall_s']:.1f} s, load {job['load']:.1f}); "
              f"bare {bare['rate']:6.1f} tokens/s ({bare['tokens']} in {bare['wall_s']:.1f} s, load {bare['load']:.1f})")
    print(f"""   generate job (predictions asset)  {job_rate:8.1f} tokens/s{'  (median)' if args.rounds > 1 else ''}
   bare LLM.chat                     {bare_rate:8.1f} tokens/s
   ratio job / bare                  {job_rate / bare_rate:8.3f}   (target >= 0.95); identical answers: {same:.1%}
2. Re-run served by the cache
   first run   {run_wall:7.1f} s run, {first['process_s']:7.1f} s process (engine start and shutdown included)
   cached run  {cached_wall:7.1f} s run, {cached['process_s']:7.1f} s process
   cached / first  {cached_wall / run_wall:7.2%} runs   (target < 5%); {cached['process_s'] / first['process_s']:.2%} processes
3. Peak memory, RSS summed over the process tree (sampled every 0.5 s)
   generate job step  {max(r['peak'] for r in job_rounds):6.2f} GiB
   bare LLM.chat      {max(r['peak'] for r in bare_rounds):6.2f} GiB
4. Launch to success, process start to exit (engine start, imports and Dagster's run included)""")
    for number, (job, bare) in enumerate(zip(job_rounds, bare_rounds)):
        print(f"   round {number}: generate job {job['process_s']:6.1f} s; bare script {bare['process_s']:6.1f} s; "
              f"ratio {job['process_s'] / bare['process_s']:.3f}")
    print(f"""   generate job  {job_process:7.1f} s{'  (median)' if args.rounds > 1 else ''}
   bare script   {bare_process:7.1f} s
   ratio job / bare  {job_process / bare_process:.3f}   (target <= 1.05)""")


if __name__ == "__main__":
    main()

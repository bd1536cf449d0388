"""Benchmark: likelihood scoring against its floor, prefilling each prompt once, on one engine
(vLLM on the CPU).

    python medassets_tests/benchmarks/bench_scoring.py [--per-task N] [--max-tokens 48] [--rounds 3]

The test prompts of the six sample tasks, split and rendered as the pipeline does (seed 0, a
20% test share; with --per-task N, the first N of each task), asked of the embedded model
through medassets' own engine (`VLLMEngine`, the `vllm` backend's), in one process. Each round
scores every prompt (each answer phrase's log-probability, `scoring: likelihood`), generates one
token for every prompt (`max_tokens` 1, the same conversations and chat template: the prefill
floor, which no scoring can beat) and generates an answer to every prompt (greedy,
`--max-tokens`, for reference), the order turned around from one round to the next, with vLLM's
prefix cache emptied before each. Prints each round's seconds, the ratio score / floor of each
round (median and range; the issue's target on a CPU: at most 1.5) and generate / score (the
design's target on a GPU: at least 3).

Then the sample results, on the last round's answers: per task, the F1 of the generated answers
(parsed; an invalid answer counts as negative), the F1 of the scored labels and the AUROC of
the scores, beside the baseline's F1 and AUROC (TF-IDF and logistic regression fit on the
train split).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from medassets.core.answers import positive_share  # noqa: E402
from medassets.core.asking import task_choices, task_requests  # noqa: E402
from medassets.core.baseline import fit_scores  # noqa: E402
from medassets.core.metrics import binary_report, score_report  # noqa: E402
from medassets.core.parsing import parse_answer  # noqa: E402
from medassets.core.prompts import render_prompts  # noqa: E402
from medassets.core.registry import Sampling  # noqa: E402
from medassets.core.splitting import stratified_split  # noqa: E402
from medassets.engines.vllm_offline import VLLMEngine, VLLMModel  # noqa: E402
from medassets.tasks import TASK_KEYS  # noqa: E402
from medassets.weights.embedded import EMBEDDED_MODEL_NAME, prepare_embedded_model  # noqa: E402


def task_data(per_task: int | None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(split, test prompts of the paper's wording) per task."""
    data = {}
    for task in TASK_KEYS:
        split = stratified_split(pd.read_csv(REPO / "data" / "samples" / f"{task}.csv", dtype={"label": int}))
        test = split[split["part"] == "test"].head(per_task)
        data[task] = split, render_prompts(task, test)
    return data


def timed(action) -> tuple[float, list]:
    started = time.monotonic()
    results = action()
    return time.monotonic() - started, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-task", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    models = Path(os.environ.get("MEDASSETS_TEST_MODELS_DIR") or tempfile.mkdtemp())
    folder = prepare_embedded_model(models / EMBEDDED_MODEL_NAME).folder
    data = task_data(args.per_task)
    asking = {"variant": "paper", "shots": 0, "shot_seed": 0, "system_prompt": None}
    generating = [task_requests(t, prompts, split, **asking, choices=None) for t, (split, prompts) in data.items()]
    scoring = [task_requests(t, prompts, split, **asking, choices=task_choices(t, "free", "likelihood")) for t, (split, prompts) in data.items()]
    requests = {"generate": [r for rows in generating for r in rows.requests], "score": [r for rows in scoring for r in rows.requests]}
    print(f"{len(requests['generate'])} test prompts of {len(data)} tasks", flush=True)

    engine = VLLMEngine(VLLMModel(name="bench", source={"embedded": "smollm2-135m-instruct"}), folder)
    sampling = {"floor": Sampling(max_tokens=1), "generate": Sampling(max_tokens=args.max_tokens)}
    answers: dict[str, list] = {}

    def run(kind: str) -> list:
        done = [None] * len(requests[kind])

        def on_done(index, generation):
            done[index] = generation

        if kind == "score":
            engine.score(requests[kind], chat_template=None, on_done=on_done)
        else:
            engine.generate(requests[kind], sampling=sampling[kind], chat_template=None, on_done=on_done)
        return done

    requests["floor"] = requests["generate"]
    # vLLM compiles a kernel (the rank of a token's log-probability) the first time it reports one.
    engine.score(requests["score"][:len(data)], chat_template=None, on_done=lambda index, generation: None)
    kinds = ("score", "floor", "generate")
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_number in range(args.rounds):
        for kind in kinds if round_number % 2 == 0 else kinds[::-1]:
            engine.llm.reset_prefix_cache()
            elapsed, answers[kind] = timed(partial(run, kind))
            seconds[kind].append(elapsed)
            print(f"round {round_number + 1}: {kind} {elapsed:.1f} s", flush=True)
    engine.close()
    if {answer.completion_tokens for answer in answers["floor"]} != {1}:
        raise RuntimeError("the floor is one generated token per prompt; some answers had another count")
    to_floor = [score / floor for score, floor in zip(seconds["score"], seconds["floor"])]
    to_generate = [generate / score for generate, score in zip(seconds["generate"], seconds["score"])]
    print(f"\nscore / floor over {args.rounds} rounds: median {statistics.median(to_floor):.2f}, "
          f"range {min(to_floor):.2f}-{max(to_floor):.2f} (target on a CPU: at most 1.5)")
    print(f"generate ({args.max_tokens} tokens) / score: median {statistics.median(to_generate):.2f}, "
          f"range {min(to_generate):.2f}-{max(to_generate):.2f} (target on a GPU: at least 3)")

    rows, offset = [], 0
    for task, (split, prompts) in data.items():
        test = prompts[prompts["variant"] == "paper"]
        gold = test["label"].to_numpy()
        generated = answers["generate"][offset : offset + len(test)]
        scored = answers["score"][offset : offset + len(test)]
        offset += len(test)
        labels = [parse_answer(task, g.text).label for g in generated]
        scores = [positive_share(g.choice_logprobs) for g in scored]
        train = split[split["part"] == "train"]
        baseline, _ = fit_scores(train["text"], train["label"], split.set_index("id").loc[test["id"], "text"])
        rows.append({
            "task": task,
            "F1 generated": binary_report(gold, [-1 if label is None else label for label in labels], n_resamples=1)["f1"],
            "F1 scored": binary_report(gold, [int(s > 0.5) for s in scores], n_resamples=1)["f1"],
            "AUROC scored": score_report(gold, scores, n_resamples=1)["auroc"],
            "F1 baseline": binary_report(gold, (baseline > 0.5).astype(int), n_resamples=1)["f1"],
            "AUROC baseline": score_report(gold, baseline, n_resamples=1)["auroc"],
        })
    print()
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()

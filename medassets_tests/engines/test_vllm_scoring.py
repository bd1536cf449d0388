"""Likelihood scoring on the offline engine: which choices one forced generation reads (pure
logic), and the scores of a real vLLM engine against each choice's log-probabilities computed
directly on the same engine (a prefill of the conversation and the choice, without the prefix
cache, as the engine scored before it forced generations)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from medassets.core.asking import task_choices, task_requests
from medassets.core.prompts import render_prompts
from medassets.core.splitting import stratified_split
from medassets.engines.vllm_offline import reading_paths
from medassets.tasks import TASK_KEYS
from medassets.weights.embedded import EMBEDDED_MODEL_NAME


def reads(path: tuple[int, ...], choice: tuple[int, ...]) -> bool:
    """Generating `path` gives each of `choice`'s tokens a step: its tokens before the last are the path's."""
    return len(path) >= len(choice) and path[: len(choice) - 1] == choice[:-1]


@pytest.mark.parametrize(
    "choices, generated",
    [
        # "the tweet is self-reporting X" / "... not self-reporting X" / "... not self-reporting potential":
        # the last ends one token after the second's "self-reporting".
        ([(1, 2, 3, 4, 5), (1, 2, 6, 3, 4, 5), (1, 2, 6, 3, 7)], [(1, 2, 6, 3, 4, 5), (1, 2, 3, 4, 5)]),
        # covid19: the third choice is the start of the second.
        ([(1, 2, 3, 8, 9), (1, 2, 6, 3, 8, 9), (1, 2, 6, 3, 8)], [(1, 2, 6, 3, 8, 9), (1, 2, 3, 8, 9)]),
        # "the note involves" / "the note does not involve": one generation reads both.
        ([(1, 2, 3), (1, 2, 4, 5, 6)], [(1, 2, 4, 5, 6)]),
        # The same first tokens, then parting after two: each its own generation.
        ([(1, 2, 3, 4), (1, 2, 5, 6)], [(1, 2, 3, 4), (1, 2, 5, 6)]),
        ([(7,), (7,)], [(7,)]),  # identical choices
        ([(7,), (8,)], [(7,)]),  # single tokens: one step gives both
    ],
)
def test_each_choice_is_read_from_a_generation_that_gives_each_of_its_tokens_a_step(choices, generated):
    paths, reader = reading_paths(choices)
    assert paths == generated
    assert all(reads(paths[reader[c]], choice) for c, choice in enumerate(choices))


# A vLLM engine in a child process: the test process never imports vLLM. It scores the items
# with `VLLMEngine.score` and then computes each choice's log-probability directly: a prefill of
# the conversation's generation prompt and the choice's tokens, with vLLM's prompt
# log-probabilities and without reading the prefix cache, the choice's tokens' terms summed.
DIRECT = """
import json, sys
from pathlib import Path
from vllm import SamplingParams
from vllm.inputs import TokensPrompt
from medassets.core.asking import Request
from medassets.engines.vllm_offline import VLLMEngine, VLLMModel, reading_paths

def main():
    folder, items = sys.argv[1], json.load(sys.stdin)
    engine = VLLMEngine(VLLMModel(name="test", source={"embedded": "smollm2-135m-instruct"}), Path(folder))
    requests = [Request(item["messages"], tuple(item["choices"])) for item in items]
    scored = [None] * len(requests)
    engine.score(requests, chat_template=None, on_done=lambda i, generation: scored.__setitem__(i, generation))
    tokenizer = engine.llm.get_tokenizer()
    params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False, skip_reading_prefix_cache=True)
    direct = []
    for request in requests:
        text = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        prefix = tokenizer(text, add_special_tokens=False).input_ids
        row = []
        for choice in request.choices:
            ids = tokenizer(choice, add_special_tokens=False).input_ids
            (output,) = engine.llm.generate([TokensPrompt(prompt_token_ids=prefix + ids)], params, use_tqdm=False)
            row.append(sum(output.prompt_logprobs[len(prefix) + j][token].logprob for j, token in enumerate(ids)))
        direct.append(row)
    engine.close()
    generations = [len(reading_paths([tuple(tokenizer(c, add_special_tokens=False).input_ids) for c in r.choices])[0]) for r in requests]
    print(json.dumps({"scored": [g.choice_logprobs for g in scored], "generations": generations, "direct": direct}))

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_scores_equal_each_choice_prefilled_directly_on_the_same_engine(models_dir):
    """Two test prompts of each sample task, as the pipeline renders them (the paper's wording)."""
    items, tasks = [], []
    for task in TASK_KEYS:
        split = stratified_split(pd.read_csv(REPO / "data" / "samples" / f"{task}.csv", dtype={"label": int}))
        prompts = render_prompts(task, split[split["part"] == "test"].head(2))
        asked = task_requests(task, prompts, split, variant="paper", shots=0, shot_seed=0, system_prompt=None,
                              choices=task_choices(task, "free", "likelihood"))
        items += [{"messages": request.messages, "choices": list(request.choices)} for request in asked.requests]
        tasks += [task] * len(asked.requests)
    found = json.loads(subprocess.run(
        [sys.executable, "-c", DIRECT, str(models_dir / EMBEDDED_MODEL_NAME)], input=json.dumps(items),
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout.splitlines()[-1])
    # The social-media tasks' three phrases take two generations, the clinical tasks' two phrases one.
    assert found["generations"] == [1 if task in ("stigma_labeling", "medication_change_discussion") else 2 for task in tasks]
    for scored, direct in zip(found["scored"], found["direct"]):
        # A decoding step and a prefill sum in different orders in float32: a phrase's
        # log-probability (about 8 token terms, down to -25) agrees to 1e-3 (measured: 1.5e-5).
        np.testing.assert_allclose(scored, direct, rtol=0, atol=1e-3)
        # The phrases' log-probabilities lie far apart: one read from another's steps would show.
        assert min(abs(a - b) for i, a in enumerate(direct) for b in direct[i + 1 :]) > 0.01

"""The reference of bench_predictions.py: a plain script that builds vLLM's `LLM()` and calls
`chat` on the given prompts, as someone would without medassets.

    python bare_chat.py MODEL_FOLDER PROMPTS.json MAX_TOKENS OUT.json
"""

import json
import sys
import time


def main() -> None:
    folder, prompts_file, max_tokens, out = sys.argv[1:5]
    from vllm import LLM, SamplingParams

    with open(prompts_file) as handle:
        conversations = [[{"role": "user", "content": prompt}] for prompt in json.load(handle)]
    llm = LLM(model=folder, dtype="float32", max_model_len=2048, enforce_eager=True, gpu_memory_utilization=0.3, seed=0)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=int(max_tokens), seed=0, stop=None)
    started = time.monotonic()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    wall = time.monotonic() - started
    tokens = sum(len(output.outputs[0].token_ids) for output in outputs)
    with open(out, "w") as handle:
        json.dump({"wall_s": wall, "tokens": tokens, "texts": [o.outputs[0].text for o in outputs]}, handle)
    llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main()

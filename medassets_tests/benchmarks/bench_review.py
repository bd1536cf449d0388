"""The review page's task page over the paper's largest test set (1,494 items) and 30 models:
server time per request (in process, through the ASGI app), median and max.

    PYTHONPATH=. python medassets_tests/benchmarks/bench_review.py [--requests 40]

Labels and predictions frames are written straight into a temporary asset storage through
AssetStorage; the first request reads them, later ones find them unchanged (their files'
ukey) and only filter, count, page and render. Each filter of the page is asked in turn.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

ITEMS, MODELS, TASK = 1494, 30, "medication_change_discussion"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update({"MEDASSETS_HOME": home, "MEDASSETS_REGISTRY": f"{home}/models.yaml"})
        os.environ.pop("DAGSTER_HOME", None)
        models = [f"model-{n:02d}" for n in range(MODELS)]
        with open(f"{home}/models.yaml", "w") as registry:
            registry.write("models:\n" + "".join(f"  - name: {name}\n    backend: baseline\n" for name in models))
        from starlette.testclient import TestClient

        from medassets.defs.io import AssetStorage
        from medassets.review.app import create_app

        storage = AssetStorage(root_url=home)
        rng = np.random.default_rng(0)
        ids = [f"item-{n:05d}" for n in range(ITEMS)]
        gold = rng.integers(0, 2, ITEMS)
        for name in models:
            labels = np.where(rng.random(ITEMS) < 0.8, gold, 1 - gold)
            labels[rng.random(ITEMS) < 0.03] = -1
            reasons = pd.array(np.where(labels == -1, "no answer phrase", None), dtype="string")
            storage.write("parsed_labels", [name, TASK], pd.DataFrame({
                "id": pd.array(ids, dtype="string"), "gold": gold, "label": labels, "answer": "x", "reasoning": None, "invalid_reason": reasons,
            }))
            finish = np.where(rng.random(ITEMS) < 0.02, "length", "stop")
            storage.write("predictions", [name, TASK], pd.DataFrame({"id": ids, "finish_reason": finish}))
        client = TestClient(create_app({"http://testserver"}, "token"))
        assert client.get("/review.css?token=token").status_code == 200  # a session (its cookie kept), no state read
        queries = ["", "?filter=disagree", "?filter=all_wrong", f"?filter=only_wrong&model={models[3]}",
                   f"?filter=discordant&a={models[0]}&b={models[1]}", "?filter=invalid&reason=no+answer+phrase",
                   "?filter=gold&label=1", "?filter=truncated", "?page=20"]
        started = time.perf_counter()
        assert client.get(f"/tasks/{TASK}").status_code == 200
        first = time.perf_counter() - started
        times = []
        for n in range(args.requests):
            started = time.perf_counter()
            response = client.get(f"/tasks/{TASK}{queries[n % len(queries)]}")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
        print(f"task page, {ITEMS} items x {MODELS} models, {args.requests} requests: first (reads the files) {first:.3f} s; "
              f"then median {statistics.median(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()

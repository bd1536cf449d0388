"""What a Slurm job of medassets runs (`defs/slurm.py` submits it): the predictions of the
models that share one engine, its progress relayed to the Dagster run through Dagster Pipes.

    python -m medassets.slurm_job WORK RESULT

WORK holds the backend, its batches, the models folder and the response cache's opener, as
pickled by the step; the predictions go to RESULT, written whole or not at all. Answers are
cached as they come, so a job that ends early keeps every answer it finished.
"""

import os
import pickle
import sys
from pathlib import Path

from dagster_pipes import open_dagster_pipes

from medassets.engines.answering import wait_for_closing_engines


def main() -> None:
    work, result = map(Path, sys.argv[1:3])
    os.umask(0o077)  # the result holds the answers to clinical notes
    with open_dagster_pipes() as pipes:
        backend, batches, models_dir, open_cache = pickle.loads(work.read_bytes())
        try:
            predictions = backend.predict(batches, models_dir=models_dir, open_cache=open_cache, report=pipes.log.info)
            wait_for_closing_engines()
        except Exception as exc:
            pipes.report_custom_message({"error": f"{type(exc).__name__}: {exc}"})
            raise
        written = result.with_name(result.name + ".partial")
        written.write_bytes(pickle.dumps(predictions))
        written.replace(result)


if __name__ == "__main__":
    main()

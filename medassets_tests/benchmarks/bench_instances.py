"""Benchmark of the Dagster instance: the sample pipeline on the single-user SQLite instance
against the team instance (deploy/dagster.yaml) on a PostgreSQL server, in one invocation.

    python medassets_tests/benchmarks/bench_instances.py [--rounds R]

Each side runs the same runs on the six sample tasks with the baseline model: data (6
prepare_data runs), one generate run, evaluation (6 evaluate runs) and the comparison, each
run in process as `make run` runs it, in a fresh instance and state folder per round. The
figure is the wall time of everything but generation (the data, evaluation and comparison
runs, from each run's start to its end), and the ratio Postgres / SQLite of the medians.
Sides alternate, so that a drift of the machine favours neither. The PostgreSQL server is
Debian's, started here in a temporary folder (support.postgres_server).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "medassets_tests"))
from dagster_runs import generate_range  # noqa: E402
from support import postgres_server  # noqa: E402

from medassets.defs.partitions import partition_key  # noqa: E402
from medassets.tasks import TASK_KEYS  # noqa: E402

MODEL = "tfidf-logreg"


def pipeline(root: Path, name: str, instance_config: Path | None, env: dict) -> float:
    """Seconds of the non-generation runs of one pipeline, in a fresh instance."""
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "instance").mkdir(parents=True)
    if instance_config:
        shutil.copy(instance_config, folder / "instance" / "dagster.yaml")
    runs = [f"prepare_data:{task}" for task in TASK_KEYS] + [generate_range(MODEL)]
    runs += [f"evaluate:{partition_key(MODEL, task)}" for task in TASK_KEYS] + ["compare"]
    out = folder / "runs.json"
    command = [sys.executable, str(REPO / "medassets_tests" / "dagster_runs.py"), "--instance", str(folder / "instance"),
               "--out", str(out), *runs]
    subprocess.run(command, cwd=REPO, env=env | {"MEDASSETS_HOME": str(folder / "home")}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reports = json.loads(out.read_text())
    failed = [report["job"] for report in reports if not report["success"]]
    if failed or len(reports) != len(runs):
        sys.exit(f"{name}: runs failed: {failed or 'see ' + str(folder)}")
    return sum(report["ended"] - report["started"] for report in reports if report["job"] != "generate")


def fresh_database(url: str) -> None:
    import psycopg2

    db = psycopg2.connect(url)
    db.autocommit = True
    db.cursor().execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-instances-"))
    registry = root / "models.yaml"
    registry.write_text(f"models:\n  - name: {MODEL}\n    backend: baseline\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDASSETS_")}
    env |= {"MEDASSETS_REGISTRY": str(registry), "MEDASSETS_DATASETS": str(REPO / "data" / "datasets.yaml")}
    sqlite, postgres = [], []
    with postgres_server() as url:
        for number in range(args.rounds):
            sides = [("sqlite", None, env, sqlite), ("postgres", REPO / "deploy" / "dagster.yaml",
                                                      env | {"MEDASSETS_POSTGRES_URL": url}, postgres)]
            for name, config, side_env, times in sides[:: 1 if number % 2 == 0 else -1]:
                if name == "postgres":  # a fresh database per round, as the SQLite side gets fresh files
                    fresh_database(url)
                times.append(pipeline(root, f"{name}-{number}", config, side_env))
                print(f"round {number}: {name:8s} {times[-1]:6.1f} s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    ratio = statistics.median(postgres) / statistics.median(sqlite)
    print(f"""
Data, evaluation and comparison runs of the sample pipeline (baseline model, 13 runs), median of {args.rounds}:
   SQLite instance    {statistics.median(sqlite):6.1f} s
   Postgres instance  {statistics.median(postgres):6.1f} s
   ratio Postgres / SQLite  {ratio:.2f}""")


if __name__ == "__main__":
    main()

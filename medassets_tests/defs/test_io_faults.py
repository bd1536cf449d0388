"""Asset storage under faults, with real processes: a writer killed (SIGKILL) in the middle of
writing an asset partition or a report, and a write that hits a full disk, simulated with the
file-size limit (RLIMIT_FSIZE, which needs no root: the write fails with EFBIG)."""

import contextlib
import resource
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from medassets.defs.io import AssetStorage

# argv: root URL, what to write (asset or report), rows of 1 kB. The payload is random, so it
# does not compress: ~rows kB of Parquet.
WRITER = """
import os, sys
import pandas as pd
from medassets.defs.io import AssetStorage
storage = AssetStorage(root_url=sys.argv[1])
rows = int(sys.argv[3])
frame = pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "payload": [os.urandom(1000) for _ in range(rows)]})
print("writing", flush=True)
if sys.argv[2] == "asset":
    storage.write("metrics", ["m", "t"], frame)  # what the IO manager calls for every DataFrame asset
else:
    storage.write_bytes("reports/table3.parquet", frame.to_parquet(index=False))  # as the comparison writes its reports
"""
FINAL = {"asset": "assets/metrics/m/t.parquet", "report": "reports/table3.parquet"}
PREVIOUS = pd.DataFrame({"id": ["previous"], "payload": [b"whole"]})


def write_previous(storage: AssetStorage, what: str) -> None:
    if what == "asset":
        storage.write("metrics", ["m", "t"], PREVIOUS)
    else:
        storage.write_bytes(FINAL["report"], PREVIOUS.to_parquet(index=False))


def sizes(folder) -> dict[str, int]:
    """{name: size} of the files in a folder, as one look sees them (a file may be renamed meanwhile)."""
    found = {}
    for path in folder.iterdir() if folder.exists() else ():
        with contextlib.suppress(FileNotFoundError):
            found[path.name] = path.stat().st_size
    return found


@pytest.mark.parametrize("what, previous", [("asset", True), ("asset", False), ("report", True)])
def test_a_writer_killed_midway_leaves_the_previous_file_or_none(tmp_path, what, previous):
    storage = AssetStorage(root_url=str(tmp_path))
    final = tmp_path / FINAL[what]
    if previous:
        write_previous(storage, what)
    before = sizes(final.parent)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), what, "50000"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    deadline = time.monotonic() + 60
    while not (growing := {name: size for name, size in sizes(final.parent).items() if size and before.get(name) != size}):
        assert writer.poll() is None, "the writer ended before its file was seen being written"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    print(f"\nkilled with bytes written: {growing}")
    # What a later run reads: the previous file whole, or no file; the partial one is never a partition.
    if previous:
        pd.testing.assert_frame_equal(pd.read_parquet(final), PREVIOUS)
    else:
        assert not final.exists()
    if what == "asset":
        found = storage.read_model_task_frames("metrics", ["m"])
        assert list(found) == ([("m", "t")] if previous else [])


def limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("what", ["asset", "report"])
def test_a_full_disk_fails_naming_the_file_and_keeps_the_previous_one(tmp_path, what):
    storage = AssetStorage(root_url=str(tmp_path))
    final = tmp_path / FINAL[what]
    write_previous(storage, what)
    writer = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), what, "4000"], capture_output=True, text=True,
                            preexec_fn=limit_file_size(1 << 20), timeout=120)
    assert writer.returncode == 1
    error = writer.stderr.strip().splitlines()[-1]
    assert error.startswith(f"medassets.defs.io.StorageError: {final}: cannot write ")
    assert "the file size limit is reached (File too large)" in error and "materialize the partition again" in error
    pd.testing.assert_frame_equal(pd.read_parquet(final), PREVIOUS)
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # nothing partial left behind

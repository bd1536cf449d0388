"""The tests' single-node Slurm cluster (conftest's `slurm` fixture) schedules a batch job that
asks for the 4 GPUs of the gpu partition and memory, and shows what the job was given."""

import pytest
from support import SlurmCluster

pytestmark = pytest.mark.slow  # starts munged, slurmctld and slurmd


def test_a_gpu_batch_job_runs_with_its_resources(slurm: SlurmCluster, tmp_path):
    out = tmp_path / "out.txt"
    job_id = slurm.command("sbatch", "--parsable", "--gres=gpu:4", "--mem=1G", "--partition=gpu",
                           f"--output={tmp_path / 'job.log'}", "--wrap", f"echo hi > {out}").strip()

    job = slurm.wait_for_job(job_id, timeout_s=30)

    assert job["JobState"] == "COMPLETED", job
    assert out.read_text() == "hi\n"
    assert job["Partition"] == "gpu"
    assert job["TresPerNode"] == "gres:gpu:4"  # Slurm 22.05 without slurmdbd leaves GPUs out of TRES
    assert "mem=1G" in job["TRES"].split(",")
    assert slurm.queued() == []

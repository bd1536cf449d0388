"""Slurm requests and scripts, as pure logic: what a model's job asks for, the deployment's
settings and their errors, and Slurm's job records read back. The cluster itself is in
medassets_tests/defs/test_slurm_generation.py."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from medassets.core.registry import RegistryError, SlurmRequest, parse_registry
from medassets.core.slurm import SlurmError, batch_script, job_name, job_request, load_deployment, run_of_job, sbatch_arguments, scontrol_fields


def test_an_entry_s_request_overrides_the_deployment_s_defaults_field_by_field():
    defaults = SlurmRequest(partition="gpu", account="lab", memory="64G", time_limit="04:00:00", options=("--exclusive",))
    entry = SlurmRequest(memory="200G", qos="high", options=("--begin=now+60",))
    request = job_request(defaults, entry)
    assert (request.partition, request.account, request.memory, request.qos, request.time_limit) == ("gpu", "lab", "200G", "high", "04:00:00")
    assert request.options == ("--exclusive", "--begin=now+60")  # the entry's last: sbatch keeps the last of a repeated option
    assert job_request(SlurmRequest(), SlurmRequest()) == SlurmRequest()


def test_sbatch_asks_for_the_gpus_and_each_setting_given_and_nothing_else(tmp_path):
    request = SlurmRequest(partition="gpu", memory="64G", cpus_per_task=8, constraint="h100", options=("--exclusive",))
    arguments = sbatch_arguments(request, gpus=4, job_name="medassets-llama", output=tmp_path / "out-%j")
    assert arguments == [
        "--parsable", "--job-name=medassets-llama", f"--output={tmp_path / 'out-%j'}", "--nodes=1", "--ntasks=1", "--gres=gpu:4",
        "--partition=gpu", "--constraint=h100", "--mem=64G", "--cpus-per-task=8", "--exclusive",
    ]
    assert not any(argument.startswith("--gres") for argument in sbatch_arguments(SlurmRequest(), gpus=0, job_name="j", output=tmp_path))


def test_the_batch_script_runs_the_setup_then_the_job_with_its_environment_quoted(tmp_path):
    marker = tmp_path / "ran"
    script = batch_script(
        python="/usr/bin/env", setup=[f"echo setup > {shlex.quote(str(marker))}"],
        environment={"PIPES": "a b'c"}, arguments=["work file"],
    )
    assert script.splitlines()[-1] == "exec /usr/bin/env -m medassets.slurm_job 'work file'"
    # Without the job's module, `env` prints the environment it runs in (the value unquoted again).
    done = subprocess.run(["bash", "-c", script.replace(" -m medassets.slurm_job 'work file'", "")], capture_output=True, text=True)
    assert marker.read_text() == "setup\n"
    assert "PIPES=a b'c" in done.stdout.splitlines()


def test_scontrol_records_keep_values_that_hold_equals_signs():
    line = "JobId=7 JobName=medassets-m JobState=PENDING Reason=BeginTime TRES=cpu=1,mem=16G,node=1,billing=1,gres/gpu=4 Partition=gpu"
    fields = scontrol_fields(line)
    assert fields["TRES"] == "cpu=1,mem=16G,node=1,billing=1,gres/gpu=4"
    assert (fields["JobState"], fields["Reason"], fields["Partition"]) == ("PENDING", "BeginTime", "gpu")


def test_deployment_settings_are_read_with_defaults(tmp_path):
    path = tmp_path / "slurm.yaml"
    path.write_text("python: /shared/venv/bin/python\nsetup: [module load cuda]\ndefaults: {partition: gpu, memory: 64G}\n")
    deployment = load_deployment(path)
    assert deployment.defaults.partition == "gpu" and deployment.setup == ("module load cuda",)
    assert (deployment.poll_interval_s, deployment.pending_report_after_s, deployment.work_dir) == (5.0, 300.0, None)


@pytest.mark.parametrize(
    "text, field",
    [("defaults: {memory: lots}\n", "defaults.memory"), ("poll_interval_s: 0\n", "poll_interval_s"), ("partition: gpu\n", "partition"),
     ("defaults: {time_limit: soon}\n", "defaults.time_limit")],
)
def test_bad_deployment_settings_name_the_file_and_the_field(tmp_path, text, field):
    path = tmp_path / "slurm.yaml"
    path.write_text(text)
    with pytest.raises(SlurmError, match=rf"{path}: `{field}`"):
        load_deployment(path)


def test_a_registry_entry_s_slurm_options_are_checked_where_it_is_written():
    text = "models:\n  - name: m\n    backend: vllm\n    source: {path: /w}\n    slurm:\n      options: ['--exclusive', 'exclusive']\n"
    with pytest.raises(RegistryError, match=r"x.yaml:6: model 'm': `slurm.options`: .*one argument starting with '-'"):
        parse_registry(text, "x.yaml")


def test_the_shipped_example_settings_load():
    deployment = load_deployment(Path(__file__).resolve().parents[2] / "deploy" / "slurm.yaml")
    assert deployment.defaults.partition == "gpu" and deployment.python.endswith("/bin/python")


def test_a_job_s_name_holds_the_run_that_submitted_it_for_its_model():
    run_id = str(uuid.uuid4())
    name = job_name(run_id, "smollm2-135m")
    assert run_of_job(name, "smollm2-135m") == run_id
    assert run_of_job(name, "smollm2") is None  # another model's name, a prefix of this one's
    assert run_of_job(job_name(run_id, "smollm2"), "smollm2-135m") is None
    assert run_of_job("medassets-smollm2-135m", "smollm2-135m") is None  # no run in it

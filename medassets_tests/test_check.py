"""`python -m medassets.check`: each setting checked, and a bad one named with what to do."""

import os
import subprocess
import sys


def _check(**env) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MEDASSETS_")}
    return subprocess.run([sys.executable, "-m", "medassets.check"], env=clean | env, capture_output=True, text=True, timeout=120)


def test_the_defaults_pass(tmp_path):
    result = _check(MEDASSETS_HOME=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 6


def test_an_unreachable_postgres_url_is_named_without_its_password(tmp_path):
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_POSTGRES_URL="postgresql://team:secret@127.0.0.1:1/medassets")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAILED"))
    assert "response cache" in line and "postgresql://team:***@127.0.0.1:1/medassets (MEDASSETS_POSTGRES_URL)" in line
    assert "secret" not in result.stdout + result.stderr
    assert "PGPASSWORD" in line


def test_a_broken_registry_is_named(tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - name: m\n    backend: tgi\n")
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_REGISTRY=str(registry))
    assert result.returncode == 1
    assert f"FAILED model registry (MEDASSETS_REGISTRY): {registry}:2: model 'm': backend must be one of" in result.stdout


def test_several_greedy_samples_are_warned_of_and_pass(tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - {name: m, source: {embedded: smollm2-135m-instruct}, samples: 3}\n")
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_REGISTRY=str(registry))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warn   model registry (MEDASSETS_REGISTRY): model 'm': `samples: 3` with greedy decoding (`sampling.temperature: 0`): " \
        "the 3 samples will agree" in result.stdout
    registry.write_text("models:\n  - {name: m, source: {embedded: smollm2-135m-instruct}, samples: 3, sampling: {temperature: 0.7}}\n")
    assert "warn" not in _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_REGISTRY=str(registry)).stdout


def test_a_bad_analysis_setting_is_named_with_its_file_and_line(tmp_path):
    settings = tmp_path / "analysis.yaml"
    settings.write_text("confidence: 0.95\ncorrection: bonferroni\n")
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_ANALYSIS=str(settings))
    assert result.returncode == 1
    assert f"FAILED analysis settings (MEDASSETS_ANALYSIS): {settings}:2: `correction`: Input should be 'holm', 'bh' or 'none'" in result.stdout


def test_slurm_settings_are_checked_when_set(tmp_path):
    settings = tmp_path / "slurm.yaml"
    settings.write_text("defaults: {memory: lots}\n")
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_SLURM=str(settings))
    assert result.returncode == 1
    assert f"FAILED Slurm (MEDASSETS_SLURM, when set): {settings}: `defaults.memory`" in result.stdout
    settings.write_text("defaults: {memory: 64G}\n")
    bare = tmp_path / "bin"
    bare.mkdir()  # a PATH without Slurm's commands
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_SLURM=str(settings), PATH=str(bare))
    assert "FAILED Slurm (MEDASSETS_SLURM, when set): `scontrol` is not on PATH" in result.stdout


def test_a_deepseek_r1_entry_with_a_system_prompt_or_examples_passes_with_warnings(tmp_path):
    registry = tmp_path / "models.yaml"
    entry = "  - name: {name}\n    source: {{embedded: smollm2-135m-instruct}}\n    preset: deepseek-r1\n"
    registry.write_text(
        "models:\n" + entry.format(name="plain") + entry.format(name="told") + "    system_prompt: Be brief.\n"
        + entry.format(name="shown") + "    shots: 2\n"
    )
    result = _check(MEDASSETS_HOME=str(tmp_path), MEDASSETS_REGISTRY=str(registry))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warn ")]
    assert len(warnings) == 2
    assert "model 'told': (preset deepseek-r1) `system_prompt` is set" in warnings[0]
    assert "model 'shown': (preset deepseek-r1) `shots` is set" in warnings[1]

"""Revisions of local weights, without loading a model: what changes them and what does not,
the chat template in effect, and clear errors for weights that are not here."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medassets.core.registry import EmbeddedSource, HubSource, PathSource
from medassets.weights.folders import ModelSourceError, folder_content_hash, folder_fingerprint
from medassets.weights.sources import chat_template, source_folder, source_revision


@pytest.fixture
def folder(tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "config.json").write_text('{"hidden_size": 8}')
    (weights / "model.safetensors").write_bytes(b"\0" * 64)
    return weights


def test_quick_fingerprint_follows_config_content_and_weight_size_and_time(folder):
    first = folder_fingerprint(folder)
    assert first == folder_fingerprint(folder) and first.startswith("folder-")
    (folder / "config.json").write_text('{"hidden_size": 9}')
    second = folder_fingerprint(folder)
    assert second != first
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert folder_fingerprint(folder) != second  # the weights touched


def test_content_hash_follows_bytes_not_times(folder):
    first = folder_content_hash(folder)
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert folder_content_hash(folder) == first
    (folder / "model.safetensors").write_bytes(b"\1" * 64)
    assert folder_content_hash(folder) != first


def test_a_path_source_revision_uses_the_fingerprint_asked_for(folder):
    source = PathSource(path=str(folder))
    assert source_revision(source, "quick") == folder_fingerprint(folder)
    assert source_revision(source, "content") == folder_content_hash(folder)
    assert source_folder(source, folder.parent) == folder


def test_missing_weights_are_named(tmp_path):
    with pytest.raises(ModelSourceError, match=re.escape(f"{tmp_path / 'absent'}: model folder not found")):
        source_revision(PathSource(path=str(tmp_path / "absent")), "quick")
    with pytest.raises(ModelSourceError, match="unknown embedded model 'tinyllama'"):
        source_revision(EmbeddedSource(embedded="tinyllama"), "quick")


def test_a_hub_model_outside_the_local_cache_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelSourceError, match="not in the local Hugging Face cache; medassets never downloads"):
        source_revision(HubSource(hub="org/name", revision="main"), "quick")


def test_the_chat_template_in_effect(folder, tmp_path):
    assert chat_template(None, None).hash == "model-default"
    assert chat_template(None, folder) == chat_template(None, None)  # the folder has none
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    own = chat_template(None, folder)
    assert own.text is None and own.hash != "model-default"  # the model's own template, hashed
    chosen = chat_template("{{ messages | tojson }}", folder)  # the text of the entry's file (read with the registry)
    assert chosen.text == "{{ messages | tojson }}" and chosen.hash not in (own.hash, "model-default")


# Each in a fresh interpreter whose environment does not set offline mode: the code under test
# must set it before the Hugging Face libraries are imported (they read it once, at import).
OFFLINE_CALLERS = {
    "hub lookup": "from medassets.core.registry import HubSource; from medassets.weights.sources import source_folder\n"
                  "source_folder(HubSource(hub='org/never-downloaded', revision='main'), Path(sys.argv[1]))",
    "embedded conversion": "from medassets.weights.embedded import prepare_embedded_model\n"
                           "(Path(sys.argv[1]) / 'bogus.gguf').write_bytes(b'not a gguf')\n"
                           "prepare_embedded_model(Path(sys.argv[1]) / 'converted', gguf=Path(sys.argv[1]) / 'bogus.gguf')",
}


# The conversion imports torch and transformers in a child process (over 10 s on 2 cores).
@pytest.mark.parametrize("caller", [pytest.param(caller, marks=[pytest.mark.slow] if caller == "embedded conversion" else [])
                                    for caller in OFFLINE_CALLERS])
def test_the_code_keeps_the_hub_offline_when_the_environment_does_not(caller, tmp_path):
    code = (
        "import os, sys\nfrom pathlib import Path\n"
        "try:\n" + "".join(f"    {line}\n" for line in OFFLINE_CALLERS[caller].splitlines()) +
        "except Exception as exc:\n    print('failed as expected:', type(exc).__name__)\n"
        "from huggingface_hub import constants\n"
        "print('HF_HUB_OFFLINE', os.environ.get('HF_HUB_OFFLINE'), constants.HF_HUB_OFFLINE)\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_HUB_CACHE": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HF_HUB_OFFLINE 1 True" in done.stdout, done.stdout + done.stderr[-3000:]

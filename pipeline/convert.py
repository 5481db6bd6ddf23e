"""Keras -> .tflite with Larq Compute Engine, in a child process.

LCE 0.16's converter is native code that can crash (segfault) on some Larq models. Run
in-process, that would kill the user's session; in a child process it becomes a clear
error and the parent's files stay intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import BitliteError

TIMEOUT_S = 900


class ConversionError(BitliteError):
    """The LCE converter failed or crashed on this model."""


def convert_model(model: Any) -> bytes:
    """Convert an in-memory Keras model; returns the .tflite flatbuffer."""
    with tempfile.TemporaryDirectory(prefix="bitlite-convert-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return convert_file(path)


def convert_file(keras_path: Path) -> bytes:
    """Convert a saved Keras model file in a child Python process."""
    with tempfile.TemporaryDirectory(prefix="bitlite-convert-") as tmp:
        out = Path(tmp) / "model.tflite"
        cmd = [sys.executable, "-m", "pipeline.convert", str(keras_path), str(out)]
        env = {
            **os.environ,
            "PYTHONPATH": _import_root() + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise ConversionError(
                f"LCE conversion took over {TIMEOUT_S} s and was stopped"
            ) from None
        if proc.returncode != 0 or not out.exists():
            raise ConversionError(_describe_failure(proc))
        return out.read_bytes()


def _import_root() -> str:
    # The child must import this same checkout of bitlite, wherever it was started from.
    return str(Path(__file__).resolve().parent.parent)


def _describe_failure(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return (
            f"the LCE converter crashed ({name}) on this model; this is a known LCE 0.16 "
            "failure mode for some quantizers — nothing was written"
        )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return "LCE conversion failed: " + (lines[-1] if lines else f"exit code {proc.returncode}")


def _child(keras_path: str, out_path: str) -> None:
    import larq_compute_engine as lce

    import pipeline  # noqa: F401
    from pipeline.serialization import load_keras_model

    model = load_keras_model(Path(keras_path))
    Path(out_path).write_bytes(lce.convert_keras_model(model))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])

"""Keras -> .tflite with Larq Compute Engine, in a child process.

LCE 0.16's converter is native code that can crash (segfault) on some Larq models. Run
in-process, that would kill the user's session; in a child process it becomes a clear
error and the parent's files stay intact. The child converts the model as rewritten by
:mod:`pipeline.export.keras_rewrite` (bitpackable binary layers); if that crashes it falls back
to LCE on the model as trained, then to the plain TFLite converter (no LCE ops), and
says which one produced the file. On request it also converts the ``--baselines``: the
same network as float32 and as full-int8 (post-training, representative dataset).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BitliteError

TIMEOUT_S = 900
STRATEGIES = ("lce+rewrite", "lce", "tflite")  # tried in this order
BASELINES = ("float", "int8")


class ConversionError(BitliteError):
    """The LCE converter failed or crashed on this model."""


@dataclass
class Conversion:
    flatbuffer: bytes
    strategy: str  # which of STRATEGIES produced it
    layers: list[dict[str, Any]] = field(default_factory=list)  # export_rewrite.LayerPlan
    failures: list[str] = field(default_factory=list)  # strategies that failed, and why
    baselines: dict[str, bytes] = field(default_factory=dict)


def convert_model(model: Any) -> bytes:
    """Convert an in-memory Keras model; returns the .tflite flatbuffer."""
    with tempfile.TemporaryDirectory(prefix="bitlite-convert-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return convert(path).flatbuffer


def convert(
    keras_path: Path,
    strategies: Sequence[str] = STRATEGIES,
    baselines: Sequence[str] = (),
    representative: np.ndarray | None = None,
) -> Conversion:
    """Convert a saved Keras model in child processes, falling back along ``strategies``.

    The baselines are converted by the same child after the main model (one TensorFlow
    start-up); if they fail, the main model still stands and ``failures`` says why."""
    failures: list[str] = []
    for i, strategy in enumerate(strategies):
        tasks = [("model", strategy)] + ([(b, b) for b in baselines] if i == 0 else [])
        done, error = _run_child([(keras_path, tasks)], representative)
        if "model" not in done[0]:
            failures.append(f"{strategy}: {error}")
            continue
        main_bytes, layers = done[0].pop("model")
        missing = [b for b in baselines if b not in done[0]]
        failures += [f"baseline {b}: {error}" for b in missing] if i == 0 else []
        return Conversion(
            main_bytes, strategy, layers, failures, {b: v[0] for b, v in done[0].items()}
        )
    raise ConversionError("; ".join(failures) + " — nothing was written")


def convert_many(keras_paths: Sequence[Path], strategy: str = STRATEGIES[0]) -> list[Conversion]:
    """Convert several models in one child (one TensorFlow start-up): tests, benchmarks.
    A model whose conversion fails raises ConversionError naming it."""
    done, error = _run_child([(p, [("model", strategy)]) for p in keras_paths], None)
    out = []
    for path, result in zip(keras_paths, done, strict=True):
        if "model" not in result:
            raise ConversionError(f"{path}: {error}")
        out.append(Conversion(result["model"][0], strategy, result["model"][1]))
    return out


Task = tuple[str, str]  # (output name, strategy or baseline name)


def _run_child(
    items: Sequence[tuple[Path, Sequence[Task]]], representative: np.ndarray | None
) -> tuple[list[dict[str, tuple[bytes, list[dict[str, Any]]]]], str]:
    """Run one child over ``items``; per item, what it finished ({name: (bytes, layers)})
    and, if the child failed, why."""
    with tempfile.TemporaryDirectory(prefix="bitlite-convert-") as tmp:
        job: dict[str, Any] = {"items": [], "representative": None}
        for i, (path, tasks) in enumerate(items):
            job["items"].append(
                {
                    "keras": str(path),
                    "out": str(Path(tmp) / str(i)),
                    "tasks": [list(t) for t in tasks],
                }
            )
        if representative is not None:
            job["representative"] = str(Path(tmp) / "representative.npy")
            np.save(job["representative"], representative)
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        proc = _spawn(child_command(job_path), TIMEOUT_S * len(items))
        error = "" if proc.returncode == 0 else _describe_failure(proc)
        results = []
        for item in job["items"]:
            finished = {}
            for name, _ in item["tasks"]:
                marker = Path(item["out"]) / f"{name}.done.json"
                if marker.exists():  # written after the .tflite: its presence means success
                    finished[name] = (
                        (Path(item["out"]) / f"{name}.tflite").read_bytes(),
                        json.loads(marker.read_text()),
                    )
            results.append(finished)
        return results, error or "the child process finished without output"


def child_command(job_path: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.export.convert", str(job_path)]


def _spawn(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parents[2])  # the child imports this checkout
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"conversion took over {timeout:.0f} s and was stopped") from None


def _describe_failure(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return (
            f"the converter crashed ({name}) on this model; this is a known "
            "LCE 0.16 failure mode for some quantizers"
        )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return "conversion failed: " + (lines[-1] if lines else f"exit code {proc.returncode}")


# -- the child -------------------------------------------------------------------------
def _child(job_path: str) -> None:
    import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
    from pipeline.serialization import load_keras_model

    job = json.loads(Path(job_path).read_text())
    rep = np.load(job["representative"]) if job["representative"] else None
    for item in job["items"]:
        out = Path(item["out"])
        out.mkdir(parents=True, exist_ok=True)
        model = load_keras_model(Path(item["keras"]))
        for name, how in item["tasks"]:
            if how in BASELINES:
                flatbuffer, layers = _convert_baseline(model, how, rep), []
            else:
                flatbuffer, layers = _convert_main(model, how)
            (out / f"{name}.tflite").write_bytes(flatbuffer)
            (out / f"{name}.done.json").write_text(json.dumps(layers))


def _convert_main(model: Any, strategy: str) -> tuple[bytes, list[dict[str, Any]]]:
    import larq_compute_engine as lce
    import tensorflow as tf

    from pipeline.export.keras_rewrite import prepare_for_lce

    if strategy == "lce+rewrite":
        rewritten, plans = prepare_for_lce(model)
        return lce.convert_keras_model(rewritten), [p.to_dict() for p in plans]
    if strategy == "lce":
        return lce.convert_keras_model(model), []
    if strategy == "tflite":
        from pipeline.export.keras_rewrite import float_reference

        return tf.lite.TFLiteConverter.from_keras_model(float_reference(model)).convert(), []
    raise ValueError(f"unknown conversion strategy {strategy}")


def _convert_baseline(model: Any, name: str, representative: np.ndarray | None) -> bytes:
    import tensorflow as tf

    from pipeline.export.keras_rewrite import float_reference

    converter = tf.lite.TFLiteConverter.from_keras_model(float_reference(model))
    if name == "int8":
        if representative is None:
            raise ValueError("the int8 baseline needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        # Full int8 where TFLite has int8 kernels; ops without one (e.g. the SIGN of a
        # binary net) stay float and show up as such in the report's MAC split.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    elif name != "float":
        raise ValueError(f"unknown baseline {name}")
    return converter.convert()


if __name__ == "__main__":
    _child(sys.argv[1])

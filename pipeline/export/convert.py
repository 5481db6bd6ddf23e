"""Keras -> .tflite with Larq Compute Engine, in a child process.

The parent — which holds the user's Python objects, however the model was built — applies
:mod:`pipeline.export.keras_rewrite` and traces each variant of the model to a SavedModel
(a graph and its weights: no Keras config, no custom objects). The child converts that
graph with LCE's SavedModel entry point (or TFLite's, for the fallback and the baselines),
so any model that runs in the parent exports, whatever its quantizers or layers.

LCE 0.16's converter is native code that can crash (segfault) on some Larq models. Run
in-process, that would kill the user's session; in a child process it becomes a clear
error and the parent's files stay intact. The main model is tried as rewritten
(bitpackable binary layers); if that fails it falls back to LCE on the model as trained,
then to the plain TFLite converter (no LCE ops), and says which one produced the file. On
request the same child also converts the ``--baselines``: the same network as float32
and as full-int8 (post-training, representative dataset).
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
    chains: list[dict[str, Any]] = field(default_factory=list)  # tflite.chains.ChainReport


def _finished(flatbuffer: bytes, strategy: str, layers: list[dict[str, Any]],
              failures: list[str] | None = None,
              baselines: dict[str, bytes] | None = None) -> Conversion:  # fmt: skip
    """The conversion with bitpacked activations carried between binary layers (an
    exact rewrite, :mod:`pipeline.tflite.chains`) where LCE left float round trips."""
    from pipeline.tflite.chains import bitpack_chains
    from pipeline.tflite.reader import ModelFormatError

    chains: list[dict[str, Any]] = []
    if strategy != "tflite":
        try:
            flatbuffer, reports = bitpack_chains(flatbuffer)
            chains = [r.to_dict() for r in reports]
        except ModelFormatError:  # not a flatbuffer: the reader says so where it is read
            pass
    return Conversion(flatbuffer, strategy, layers, failures or [], baselines or {}, chains)


def convert_model(model: Any, pixel_scale: float | None = None) -> bytes:
    """Convert an in-memory Keras model; returns the .tflite flatbuffer."""
    return convert(model, pixel_scale=pixel_scale).flatbuffer


def convert(
    model: Any,
    strategies: Sequence[str] = STRATEGIES,
    baselines: Sequence[str] = (),
    representative: np.ndarray | None = None,
    pixel_scale: float | None = None,
    encoding: str | None = None,
) -> Conversion:
    """Convert a Keras model (or a saved one's path) in child processes, falling back
    along ``strategies``. ``pixel_scale``, ``encoding`` (the k-bit layers' plane encoding
    where possible; None: the cost model's): see
    :func:`~pipeline.export.keras_rewrite.prepare_for_lce`.

    The baselines are converted by the same child after the main model (one TensorFlow
    start-up); if they fail, the main model still stands and ``failures`` says why."""
    model = _loaded(model)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bitlite-trace-") as tmp:
        traced: dict[str, tuple[Path, list[dict[str, Any]]]] = {}

        def graph(how: str) -> tuple[Path, list[dict[str, Any]]]:
            """Each variant traced once: the baselines and the fallback share one graph."""
            key = variant(how)
            if key not in traced:
                traced[key] = trace(model, how, Path(tmp) / key, pixel_scale, encoding)
            return traced[key]

        extra: list[Task] = []
        for b in baselines:
            try:
                extra.append((b, b, graph(b)[0]))
            except Exception as err:  # the main model may still trace and convert
                failures.append(f"baseline {b}: tracing the model failed: {_one_line(err)}")
        for i, strategy in enumerate(strategies):
            try:
                main, layers = graph(strategy)
            except Exception as err:  # the user's model failed to trace: try the next way
                failures.append(f"{strategy}: tracing the model failed: {_one_line(err)}")
                continue
            tasks = [("model", strategy, main), *(extra if i == 0 else [])]
            done, error = _run_child([tasks], representative)
            if "model" not in done[0]:
                failures.append(f"{strategy}: {error}")
                continue
            missing = [name for name, _, _ in tasks[1:] if name not in done[0]]
            failures += [f"baseline {b}: {error}" for b in missing]
            return _finished(done[0].pop("model"), strategy, layers, failures, done[0])
    raise ConversionError("; ".join(failures) + " — nothing was written")


def convert_many(
    models: Sequence[Any], strategy: str = STRATEGIES[0], pixel_scale: float | None = None
) -> list[Conversion]:
    """Convert several models (or saved models' paths) in one child (one TensorFlow
    start-up): tests, benchmarks. A model whose conversion fails raises ConversionError
    naming it."""
    with tempfile.TemporaryDirectory(prefix="bitlite-trace-") as tmp:
        traced = [trace(_loaded(m), strategy, Path(tmp) / str(i), pixel_scale)
                  for i, m in enumerate(models)]  # fmt: skip
        done, error = _run_child([[("model", strategy, g)] for g, _ in traced], None)
    out = []
    for model, (_, layers), result in zip(models, traced, done, strict=True):
        if "model" not in result:
            raise ConversionError(f"{_label(model)}: {error}")
        out.append(_finished(result["model"], strategy, layers))
    return out


def variant(how: str) -> str:
    """Which model a conversion reads: the float reference for TFLite's converter and the
    baselines, else the one its name says (rewritten, or as trained)."""
    return "float" if how in ("tflite", *BASELINES) else how


def trace(
    model: Any,
    how: str,
    out: Path,
    pixel_scale: float | None = None,
    encoding: str | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Save the variant of ``model`` that ``how`` converts as a SavedModel in ``out``;
    return it and the rewrite's per-layer plan (empty unless rewritten)."""
    from pipeline.export.keras_rewrite import float_reference, prepare_for_lce

    layers: list[dict[str, Any]] = []
    if variant(how) == "lce+rewrite":
        model, plans = prepare_for_lce(model, pixel_scale, encoding)
        layers = [p.to_dict() for p in plans]
    elif variant(how) == "float":
        model = float_reference(model)
    elif how != "lce":
        raise ValueError(f"unknown conversion {how}")
    save_graph(model, out)
    return out, layers


def save_graph(model: Any, out: Path) -> None:
    """Trace ``model`` for inference into a SavedModel whose only signature takes a batch
    of its input shape. Only the weights are tracked, not the Keras object: nothing of
    the model's Python (custom quantizers, layers, Lambda code) needs to be importable to
    convert it."""
    import tensorflow as tf

    shape = model.input_shape
    if not shape or isinstance(shape[0], (list, tuple)):
        raise BitliteError("bitlite exports models with one image input; this one has several")
    if any(d is None for d in shape[1:]):
        raise BitliteError(f"the model's input shape {tuple(shape)} has unknown dimensions")
    spec = tf.TensorSpec([None, *shape[1:]], tf.float32, name="input")
    module = tf.Module()
    module.weights = list(model.variables)  # tracked, so the graph's captures are saved
    module.serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    tf.saved_model.save(module, str(out), signatures=module.serve)


def _loaded(model: Any) -> Any:
    if isinstance(model, (str, Path)):
        from pipeline.serialization import load_keras_model

        return load_keras_model(Path(model))
    return model


def _label(model: Any) -> str:
    return str(model) if isinstance(model, (str, Path)) else getattr(model, "name", "model")


def _one_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"


Task = tuple[str, str, Path]  # (output name, how to convert, traced SavedModel)


def _run_child(
    items: Sequence[Sequence[Task]], representative: np.ndarray | None
) -> tuple[list[dict[str, bytes]], str]:
    """Run one child over ``items`` (each a list of tasks on one model); per item, what it
    finished ({name: flatbuffer}) and, if the child failed, why."""
    with tempfile.TemporaryDirectory(prefix="bitlite-convert-") as tmp:
        job: dict[str, Any] = {"items": [], "representative": None}
        for i, tasks in enumerate(items):
            job["items"].append(
                {"out": str(Path(tmp) / str(i)), "tasks": [[n, h, str(g)] for n, h, g in tasks]}
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
            for name, _, _ in item["tasks"]:
                marker = Path(item["out"]) / f"{name}.done"
                if marker.exists():  # written after the .tflite: its presence means success
                    finished[name] = (Path(item["out"]) / f"{name}.tflite").read_bytes()
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


# -- the child: TensorFlow and LCE only, none of the model's Python -------------------
def _child(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    rep = np.load(job["representative"]) if job["representative"] else None
    for item in job["items"]:
        out = Path(item["out"])
        out.mkdir(parents=True, exist_ok=True)
        for name, how, graph in item["tasks"]:
            (out / f"{name}.tflite").write_bytes(_convert_graph(graph, how, rep))
            (out / f"{name}.done").touch()


def _convert_graph(graph: str, how: str, representative: np.ndarray | None) -> bytes:
    import tensorflow as tf

    if how in ("lce+rewrite", "lce"):
        import larq_compute_engine as lce

        return lce.convert_saved_model(graph)
    converter = tf.lite.TFLiteConverter.from_saved_model(graph)
    if how == "int8":
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
    elif how not in ("float", "tflite"):
        raise ValueError(f"unknown conversion {how}")
    return converter.convert()


if __name__ == "__main__":
    _child(sys.argv[1])

"""``python -m pipeline.export``: a trained run -> ``model.tflite`` checked against Keras.

Conversion is Larq Compute Engine's, in a child process (:mod:`pipeline.convert`), on
the model as rewritten by :mod:`pipeline.export_rewrite`: binary convolutions *and*
binary dense layers become bitpacked ``LceBconv2d`` (scales folded in). Ternary,
power-of-two and k-bit weights are then stored as int8 with per-channel scales where
their levels fit exactly (:mod:`pipeline.tflite_rewrite`). The whole test set goes
through the .tflite and through Keras; ``export_report.json`` / ``export_report.md``
record size (raw, gzip, ratio to the float32 .tflite of the same network), accuracy of
both, argmax agreement, the largest output difference, how each weight tensor is stored
and the share of multiply-accumulates that are binary. ``model.json`` beside the model
(and the same JSON inside it, metadata ``bitlite_metadata``) tells apps how to feed it.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli, data, runs
from pipeline.errors import ParityError, UsageError

MIN_AGREEMENT = 0.999  # argmax agreement below this fails the export
MODEL_JSON = "model.json"
MODEL_FORMAT = "bitlite-model/1"
EXPORT_MD = "export_report.md"
REPRESENTATIVE = 256  # training images that calibrate the int8 baseline
BASELINE_FILES = {"float": "model_float.tflite", "int8": "model_int8.tflite"}

Predict = Callable[[bytes, np.ndarray, bool], np.ndarray]
ANDROID_ASSETS = Path("app/src/main/assets")  # where android_demo/ bundles the model


def lce_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` (a batch) through LCE's interpreter, one sample at a time."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return np.asarray(Interpreter(flatbuffer, num_threads=1).predict(x, verbose=int(progress)))


def tflite_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` through TensorFlow's stock TFLite interpreter (no LCE ops)."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    return np.stack(rows)


# Interpreters parity can run with: name -> (predict, what the report says). The bitlite
# runtime registers itself here (register_interpreter) once it exists.
INTERPRETERS: dict[str, tuple[Predict, str]] = {
    "lce": (lce_predict, "larq_compute_engine Python Interpreter (x86 reference kernels)"),
    "tflite": (tflite_predict, "tensorflow.lite.Interpreter (stock TFLite, no LCE ops)"),
}


def register_interpreter(name: str, predict: Predict, description: str) -> None:
    INTERPRETERS[name] = (predict, description)


def predict(flatbuffer: bytes, x: np.ndarray, interpreter: str, progress: bool = False):
    if interpreter not in INTERPRETERS:
        raise UsageError(
            f"unknown interpreter '{interpreter}'; choose one of: "
            + ", ".join(sorted(INTERPRETERS))
        )
    return INTERPRETERS[interpreter][0](flatbuffer, x, progress)


def parity(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How closely a converted model's outputs follow the Keras model's."""
    ref_top, cand_top = reference.argmax(-1), candidate.argmax(-1)
    return {
        "keras_accuracy": float(np.mean(ref_top == labels)),
        "tflite_accuracy": float(np.mean(cand_top == labels)),
        "argmax_agreement": float(np.mean(ref_top == cand_top)),
        "max_abs_diff": float(np.max(np.abs(reference - candidate))),
    }


def describe_flatbuffer(flatbuffer: bytes) -> dict[str, Any]:
    from pipeline.flatbuffer import read_model

    fb = read_model(flatbuffer)
    macs = fb.macs()
    total = sum(macs.values())
    weights = fb.weights()
    stored = sum(w.bytes for w in weights)
    count = sum(w.count for w in weights)
    return {
        "size_bytes": len(flatbuffer),
        "gzip_bytes": gzip_size(flatbuffer),
        "ops": fb.op_counts(),
        "custom_ops": fb.custom_ops(),
        "macs": macs,
        "binary_mac_fraction": macs["binary"] / total if total else 0.0,
        "weight_bytes": stored,
        "weight_count": count,
        "bits_per_weight": 8 * stored / count if count else 0.0,
        "weight_tensors": [
            {
                "op": w.op,
                "name": w.name,
                "output": w.output,
                "dtype": w.dtype,
                "bytes": w.bytes,
                "count": w.count,
                "bits_per_weight": round(w.bits_per_weight, 3),
            }
            for w in weights
        ],
    }


def gzip_size(blob: bytes) -> int:
    """What the file costs to download inside a compressed app bundle."""
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def app_metadata(run: runs.Run, needs_lce: bool) -> dict[str, Any]:
    """The sidecar an app reads: what the model expects and what its outputs mean."""
    config = run.config()
    meta = config["data"]
    return {
        "format": MODEL_FORMAT,
        "model": config["train"]["model"],
        "method": config["method"]["name"],  # a tool run names its tool (inq, progressive)
        "dataset": meta["dataset"],
        "input_shape": meta["input_shape"],
        "input_dtype": meta["input_dtype"],
        "normalization": meta["normalization"],
        "labels": meta["labels"],
        "needs_lce": needs_lce,
        "output": "probabilities",
    }


def test_data(run: runs.Run) -> data.Dataset:
    """The run's own test set (same dataset, subset and seed as at training time)."""
    from pipeline.train import TrainConfig, load_data

    return load_data(TrainConfig.from_dict(run.config()["train"]))


def export_run(
    run: runs.Run,
    min_agreement: float = MIN_AGREEMENT,
    progress: bool = False,
    baselines: Sequence[str] = ("float",),
    interpreter: str = "lce",
    allow_inexact: bool = False,
) -> dict[str, Any]:
    """Convert ``run``'s model, check parity on its test set, write model + reports.

    Every file is written atomically, and only after conversion and parity succeeded:
    a failed export leaves the run as it was (except the report, which says why)."""
    from pipeline.convert import convert
    from pipeline.tflite_rewrite import embed_metadata, int8_weights

    model = run.load_model()  # a clear error if the run has not finished training
    ds = test_data(run)
    x_test = data.normalize(ds.x_test)
    rep = data.normalize(ds.x_train[:REPRESENTATIVE]) if "int8" in baselines else None
    wanted = sorted(set(baselines) | {"float"})  # the float file is the size reference
    conversion = convert(run.file(runs.MODEL), baselines=wanted, representative=rep)
    flatbuffer, weight_reports = int8_weights(conversion.flatbuffer, allow_inexact=allow_inexact)
    needs_lce = bool(describe_flatbuffer(flatbuffer)["custom_ops"])
    meta = app_metadata(run, needs_lce=needs_lce)
    flatbuffer = embed_metadata(flatbuffer, meta)

    keras_out = model.predict(x_test, batch_size=256, verbose=0)
    tflite_out = predict(flatbuffer, x_test, interpreter, progress=progress)
    report: dict[str, Any] = {
        **describe_flatbuffer(flatbuffer),
        **parity(keras_out, tflite_out, ds.y_test),
        "test_samples": int(len(x_test)),
        "min_agreement": min_agreement,
        "interpreter": INTERPRETERS[interpreter][1],
        "converter": conversion.strategy,
        "conversion_failures": conversion.failures,
        "layers": conversion.layers,
        "int8_weights": [w.to_dict() for w in weight_reports],
        "needs_lce": needs_lce,
    }
    report["parity_ok"] = report["argmax_agreement"] >= min_agreement
    report["baselines"] = _baselines(
        run, conversion.baselines, baselines, keras_out, x_test, ds.y_test, progress
    )
    if "float" in conversion.baselines:
        float_size = len(conversion.baselines["float"])
        report["float_size_bytes"] = float_size
        report["ratio_to_float"] = float_size / len(flatbuffer)
        report["gzip_ratio_to_float"] = (
            gzip_size(conversion.baselines["float"]) / report["gzip_bytes"]
        )
    runs.write_json(run.file(runs.EXPORT_REPORT), report)
    runs.write_bytes(run.file(EXPORT_MD), markdown(run, report).encode())
    if not report["parity_ok"]:
        raise ParityError(
            f"parity broken: the .tflite agrees with Keras on {report['argmax_agreement']:.2%} "
            f"of {len(x_test)} test images (need {min_agreement:.1%}); nothing exported, see "
            f"{run.file(runs.EXPORT_REPORT)}"
        )
    runs.write_bytes(run.file(runs.TFLITE), flatbuffer)
    runs.write_json(run.file(MODEL_JSON), meta)
    return report


def _baselines(
    run: runs.Run,
    converted: dict[str, bytes],
    requested: Sequence[str],
    keras_out: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    progress: bool,
) -> dict[str, Any]:
    """Size and accuracy of the float / int8 .tflite of the same network (stock TFLite)."""
    out: dict[str, Any] = {}
    for name, blob in converted.items():
        entry = {k: v for k, v in describe_flatbuffer(blob).items() if k != "weight_tensors"}
        if name in requested:  # measured and written only when asked for (--baselines)
            entry.update(parity(keras_out, tflite_predict(blob, x_test, progress), y_test))
            entry["interpreter"] = INTERPRETERS["tflite"][1]
            runs.write_bytes(run.file(BASELINE_FILES[name]), blob)
            entry["file"] = BASELINE_FILES[name]
        out[name] = entry
    return out


def markdown(run: runs.Run, r: dict[str, Any]) -> str:
    """The export report for people: one table per question."""
    kib = 1024
    lines = [
        f"# Export report: {run.name}",
        "",
        f"Converter: {r['converter']}; parity interpreter: {r['interpreter']}.",
        f"Needs LCE's interpreter: {'yes (LCE custom ops: ' + ', '.join(r['custom_ops']) + ')' if r['needs_lce'] else 'no (any TFLite interpreter)'}.",
        "",
        "| file | size KiB | gzip KiB | × smaller than float | bits/weight | tflite acc | keras acc | argmax agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| model.tflite | {r['size_bytes'] / kib:.1f} | {r['gzip_bytes'] / kib:.1f} | "
        f"{r.get('ratio_to_float', float('nan')):.1f} | {r['bits_per_weight']:.2f} | "
        f"{r['tflite_accuracy']:.4f} | {r['keras_accuracy']:.4f} | {r['argmax_agreement']:.4%} |",
    ]
    for name, b in r["baselines"].items():
        acc = f"{b['tflite_accuracy']:.4f}" if "tflite_accuracy" in b else "–"
        agree = f"{b['argmax_agreement']:.4%}" if "argmax_agreement" in b else "–"
        ratio = r.get("float_size_bytes", 0) / b["size_bytes"]
        lines.append(
            f"| {name} baseline | {b['size_bytes'] / kib:.1f} | {b['gzip_bytes'] / kib:.1f} "
            f"| {ratio:.1f} | {b['bits_per_weight']:.2f} | {acc} | – | {agree} |"
        )
    lines += [
        "",
        f"Max |Keras − tflite| over {r['test_samples']} test images: "
        f"{r['max_abs_diff']:.2e}; parity needs argmax agreement ≥ {r['min_agreement']:.1%}.",
        "",
        "| layer (output tensor) | op | stored | bytes | bits/weight |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {w['output']} | {w['op']} | {w['dtype']} | {w['bytes']} | {w['bits_per_weight']:.2f} |"
        for w in r["weight_tensors"]
    ]
    inexact = [w for w in r["int8_weights"] if not w["exact"]]
    if inexact:
        lines += ["", "Weights whose levels do not fit int8 exactly:"]
        lines += [f"- {w['tensor']}: stored {w['stored']}; {w['reason']}" for w in inexact]
    if r["conversion_failures"]:
        lines += ["", "Conversion fallbacks: " + "; ".join(r["conversion_failures"])]
    return "\n".join(lines) + "\n"


def android_assets(app: Path) -> Path:
    """The assets folder of the Android demo project ``app``; checked before any slow work."""
    if not (app / "app" / "src" / "main" / "AndroidManifest.xml").is_file():
        raise UsageError(f"{app} is not the Android demo project (expected android_demo/)")
    return app / ANDROID_ASSETS


def copy_to_android(run: runs.Run, assets: Path) -> None:
    """Bundle the exported model and its sidecar into the app (read by ModelMetadata.kt)."""
    for name in (runs.TFLITE, MODEL_JSON):  # the app's asset names are the run's file names
        runs.write_bytes(assets / name, run.file(name).read_bytes())


def summary(run: runs.Run, report: dict[str, Any]) -> str:
    ops = ", ".join(f"{k}×{v}" for k, v in sorted(report["ops"].items()))
    r = report
    lines = [
        f"exported {run.file(runs.TFLITE)} ({r['converter']})",
        f"  size            {r['size_bytes'] / 1024:.1f} KiB, gzip {r['gzip_bytes'] / 1024:.1f} KiB"
        + (
            f", {r['ratio_to_float']:.1f}× smaller than float32 ({r['float_size_bytes'] / 1024:.1f} KiB)"
            if "ratio_to_float" in r
            else ""
        ),
        f"  weights         {r['bits_per_weight']:.2f} bits/weight stored on average",
        f"  accuracy        keras {r['keras_accuracy']:.4f}  tflite {r['tflite_accuracy']:.4f}"
        f"  ({r['test_samples']} test images, {r['interpreter']})",
        f"  parity          argmax agreement {r['argmax_agreement']:.4%}, "
        f"max |diff| {r['max_abs_diff']:.2e}",
        f"  binary MACs     {r['binary_mac_fraction']:.1%} of {sum(r['macs'].values()):,}",
        f"  ops             {ops}",
        f"  runs on         {'LCE interpreter only (custom ops)' if r['needs_lce'] else 'any TFLite interpreter'}",
    ]
    for name, b in r["baselines"].items():
        if "tflite_accuracy" in b:
            lines.append(
                f"  {name:<6} baseline {b['size_bytes'] / 1024:.1f} KiB, gzip "
                f"{b['gzip_bytes'] / 1024:.1f} KiB, accuracy {b['tflite_accuracy']:.4f} "
                f"-> {run.file(b['file'])}"
            )
    lines += [
        f"  note            {w['tensor']}: {w['reason']}"
        for w in r["int8_weights"]
        if not w["exact"]
    ]
    lines += [f"  fallback        {f}" for f in r["conversion_failures"]]
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    p = cli.parser("python -m pipeline.export", __doc__.split("\n\n")[0])
    p.add_argument("--run", help="run directory (default: the latest run under --root)")
    p.add_argument("--root", type=Path, default=runs.DEFAULT_ROOT, help="where runs live")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        help="fail when Keras/TFLite argmax agreement is below this",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also write and measure model_float.tflite and model_int8.tflite "
        "(post-training full int8) of the same network",
    )
    p.add_argument(
        "--interpreter", default="lce", help=f"parity interpreter: {', '.join(INTERPRETERS)}"
    )
    p.add_argument(
        "--allow-inexact-int8",
        action="store_true",
        help="store weights whose levels do not fit int8 exactly as plain int8 anyway",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--android",
        type=Path,
        metavar="DIR",
        help="also bundle the model into the Android demo project DIR",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    assets = android_assets(args.android) if args.android is not None else None
    run = runs.resolve(args.run, root=args.root)
    report = export_run(
        run,
        min_agreement=args.min_agreement,
        progress=not args.quiet,
        baselines=("float", "int8") if args.baselines else (),
        interpreter=args.interpreter,
        allow_inexact=args.allow_inexact_int8,
    )
    print(summary(run, report))
    if assets is not None:
        copy_to_android(run, assets)
        print(f"copied {runs.TFLITE} and {MODEL_JSON} to {assets}")
    return 0


if __name__ == "__main__":
    cli.run(main)

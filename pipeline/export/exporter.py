"""``python -m pipeline.export``: a trained run -> ``model.tflite`` checked against Keras.

Conversion is Larq Compute Engine's, in a child process (:mod:`pipeline.export.convert`), on
the model as rewritten by :mod:`pipeline.export.keras_rewrite`: binary convolutions *and*
binary dense layers become bitpacked ``LceBconv2d`` (scales folded in). Ternary,
power-of-two and k-bit weights are then stored as int8 with per-channel scales where
their levels fit exactly, or with ``--pack-weights`` as k-bit codes (<= 16 levels) that
only bitlite's runtime decodes (:mod:`pipeline.tflite.rewrite`; parity is then checked
on bitlite_runtime alone). The whole test set goes
through the .tflite and through Keras; ``export_report.json`` / ``export_report.md``
record size (raw, gzip, ratio to the float32 .tflite of the same network), accuracy of
both, argmax agreement, the largest output difference, how each weight tensor is stored
and the share of multiply-accumulates that are binary. ``model.json`` beside the model
(and the same JSON inside it, metadata ``bitlite_metadata``) tells apps how to feed it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli, data, runs
from pipeline.errors import ParityError, UsageError
from pipeline.tflite.reader import gzip_size, read_model, weight_totals

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


def bitlite_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` through bitlite's own runtime (tflite-runtime 2.14 + our LCE kernels)."""
    from pipeline import runtime

    interp = runtime.load().Interpreter(flatbuffer, num_threads=1)
    return np.asarray(interp.predict(x), dtype=np.float32)


# Interpreters parity can run with: name -> (predict, what the report says).
INTERPRETERS: dict[str, tuple[Predict, str]] = {
    "lce": (lce_predict, "larq_compute_engine Python Interpreter (x86 reference kernels)"),
    "tflite": (tflite_predict, "tensorflow.lite.Interpreter (stock TFLite, no LCE ops)"),
}
BITLITE = "bitlite"


def register_interpreter(name: str, predict: Predict, description: str) -> None:
    INTERPRETERS[name] = (predict, description)


def _register_bitlite() -> None:
    """Our runtime joins the parity interpreters wherever ``bitlite_runtime`` imports."""
    from pipeline import runtime
    from pipeline.bench.targets.base import TargetError

    try:
        runtime.load()
    except TargetError:
        return
    register_interpreter(
        BITLITE,
        bitlite_predict,
        "bitlite_runtime Interpreter (tflite-runtime 2.14 + bitlite kernels)",
    )


_register_bitlite()


def default_interpreters() -> list[str]:
    """LCE's interpreter (the reference), then ours where it is installed."""
    return ["lce"] + ([BITLITE] if BITLITE in INTERPRETERS else [])


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


PARITY_KEYS = ("keras_accuracy", "tflite_accuracy", "argmax_agreement", "max_abs_diff")


def _interpreter_names(interpreter: str | Sequence[str] | None, pack: bool = False) -> list[str]:
    if pack and interpreter is None:  # packed weights: LCE's interpreter cannot load the file
        if BITLITE not in INTERPRETERS:
            raise UsageError("--pack-weights files run only on bitlite_runtime: install it")
        interpreter = [BITLITE]
    names = default_interpreters() if interpreter is None else interpreter
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    unknown = [n for n in names if n not in INTERPRETERS]
    if unknown or not names:
        raise UsageError(
            f"unknown interpreter '{', '.join(unknown)}'; choose from: "
            + ", ".join(sorted(INTERPRETERS))
            + ("" if BITLITE in INTERPRETERS else " (bitlite: bitlite_runtime is not installed)")
        )
    return names


def check_parity(
    flatbuffer: bytes,
    x: np.ndarray,
    keras_out: np.ndarray,
    labels: np.ndarray,
    interpreter: str,
    min_agreement: float,
    progress: bool = False,
) -> dict[str, Any]:
    """Parity of one interpreter's outputs with Keras's; an interpreter that cannot run
    the file (unsupported op option, missing build) fails parity with its error."""
    entry: dict[str, Any] = {"interpreter": INTERPRETERS[interpreter][1]}
    try:
        out = predict(flatbuffer, x, interpreter, progress=progress)
    except Exception as err:  # noqa: BLE001  (any runtime's failure is one line in the report)
        lines = str(err).strip().splitlines() or [""]
        return {**entry, "error": f"{type(err).__name__}: {lines[0]}", "ok": False}
    entry.update(parity(keras_out, out, labels))
    entry["ok"] = entry["argmax_agreement"] >= min_agreement
    return entry


def _verdict(check: dict[str, Any], samples: int) -> str:
    if "error" in check:
        return f"{check['interpreter']} cannot run it ({check['error']})"
    return (
        f"{check['interpreter']} agrees with Keras on {check['argmax_agreement']:.2%} "
        f"of {samples} test images"
    )


def describe_flatbuffer(flatbuffer: bytes) -> dict[str, Any]:
    fb = read_model(flatbuffer)
    macs = fb.macs()
    total = sum(macs.values())
    weights = fb.weights()
    stored, count, bits = weight_totals(weights)
    return {
        "size_bytes": len(flatbuffer),
        "gzip_bytes": gzip_size(flatbuffer),
        "ops": fb.op_counts(),
        "custom_ops": fb.custom_ops(),
        "macs": macs,
        "binary_mac_fraction": macs["binary"] / total if total else 0.0,
        "weight_bytes": stored,
        "weight_count": count,
        "bits_per_weight": bits,
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


def app_metadata(run: runs.Run, needs_lce: bool) -> dict[str, Any]:
    """The sidecar an app reads: what the model expects and what its outputs mean."""
    config = run.config()
    meta = config["data"]
    preprocessing = _preprocessing(meta)
    return {
        "format": MODEL_FORMAT,
        "model": config["train"]["model"],
        "method": config["method"]["name"],  # a tool run names its tool (inq, progressive)
        "dataset": meta["dataset"],
        "input_shape": meta["input_shape"],
        "input_dtype": meta["input_dtype"],
        "normalization": meta["normalization"],
        **({"preprocessing": preprocessing} if preprocessing else {}),
        "labels": meta["labels"],
        "needs_lce": needs_lce,
        "output": "probabilities",
    }


def _preprocessing(meta: dict[str, Any]) -> dict[str, Any] | None:
    """How images are framed before normalization, as the data layer does it for
    evaluation (ImageNet: resize 256, centre crop 224); None: fed as they are. Runs
    trained before config.json recorded it as a table get it from the data layer."""
    recorded = meta.get("preprocessing")
    if isinstance(recorded, dict):
        return recorded
    if meta.get("dataset") == "imagenet2012":
        from pipeline.data.imagenet import PREPROCESSING

        return dict(PREPROCESSING)
    return None


def test_data(run: runs.Run) -> data.Dataset:
    """The run's own test set (same dataset, subset and seed as at training time)."""
    from pipeline.train.trainer import TrainConfig, load_data

    return load_data(TrainConfig.from_dict(run.config()["train"]))


def export_run(
    run: runs.Run,
    min_agreement: float = MIN_AGREEMENT,
    progress: bool = False,
    baselines: Sequence[str] = ("float",),
    interpreter: str | Sequence[str] | None = None,
    allow_inexact: bool = False,
    pack: bool = False,
) -> dict[str, Any]:
    """Convert ``run``'s model, check parity on its test set, write model + reports.

    ``interpreter``: one name or several (default :func:`default_interpreters`: LCE's,
    then bitlite's runtime where installed); parity must hold on every one, and the
    report's top-level figures are the first one's. ``pack``: weights of <= 16 levels as
    k-bit codes (:mod:`pipeline.tflite.rewrite`); the file then runs only on bitlite's
    runtime, the default (and only possible) parity interpreter. Every file is written
    atomically, and only after conversion and parity succeeded: a failed export leaves
    the run as it was (except the report, which says why)."""
    from pipeline.export.convert import convert
    from pipeline.tflite.rewrite import embed_metadata, int8_weights

    names = _interpreter_names(interpreter, pack)
    model = run.load_model()  # a clear error if the run has not finished training
    ds = test_data(run)
    x_test = data.normalize(ds.x_test)
    rep = data.normalize(ds.x_train[:REPRESENTATIVE]) if "int8" in baselines else None
    wanted = sorted(set(baselines) | {"float"})  # the float file is the size reference
    conversion = convert(run.file(runs.MODEL), baselines=wanted, representative=rep)
    flatbuffer, weight_reports = int8_weights(
        conversion.flatbuffer, allow_inexact=allow_inexact, packed=pack
    )
    fb = read_model(flatbuffer)
    needs_lce, needs_bitlite = bool(fb.lce_ops()), bool(fb.bitlite_ops())
    meta = {**app_metadata(run, needs_lce=needs_lce), "needs_bitlite_runtime": needs_bitlite}
    flatbuffer = embed_metadata(flatbuffer, meta)

    keras_out = model.predict(x_test, batch_size=256, verbose=0)
    checks = {
        name: check_parity(flatbuffer, x_test, keras_out, ds.y_test, name, min_agreement, progress)
        for name in names
    }
    primary = checks[names[0]]
    if "error" in primary:  # the reference interpreter cannot run the file: nothing to report
        raise ParityError(f"{primary['interpreter']} cannot run the export: {primary['error']}")
    report: dict[str, Any] = {
        **describe_flatbuffer(flatbuffer),
        **{k: primary[k] for k in PARITY_KEYS},  # the first interpreter's (LCE's by default)
        "test_samples": int(len(x_test)),
        "min_agreement": min_agreement,
        "interpreter": primary["interpreter"],
        "parity": checks,  # every interpreter checked, by name
        "converter": conversion.strategy,
        "conversion_failures": conversion.failures,
        "layers": conversion.layers,
        "int8_weights": [w.to_dict() for w in weight_reports],
        "needs_lce": needs_lce,
        "needs_bitlite_runtime": needs_bitlite,
    }
    report["parity_ok"] = all(c["ok"] for c in checks.values())
    report["baselines"] = _baselines(
        conversion.baselines, baselines, keras_out, x_test, ds.y_test, progress
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
        broken = "; ".join(_verdict(c, len(x_test)) for c in checks.values() if not c["ok"])
        raise ParityError(
            f"parity broken: {broken} (need {min_agreement:.1%}); nothing exported, see "
            f"{run.file(runs.EXPORT_REPORT)}"
        )
    runs.write_bytes(run.file(runs.TFLITE), flatbuffer)
    runs.write_json(run.file(MODEL_JSON), meta)
    for name, entry in report["baselines"].items():  # only now: parity held
        if "file" in entry:
            runs.write_bytes(run.file(entry["file"]), conversion.baselines[name])
    return report


def _baselines(
    converted: dict[str, bytes],
    requested: Sequence[str],
    keras_out: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    progress: bool,
) -> dict[str, Any]:
    """Size and accuracy of the float / int8 .tflite of the same network (stock TFLite).
    An entry with ``file`` is written by :func:`export_run` once parity has held."""
    out: dict[str, Any] = {}
    for name, blob in converted.items():
        entry = {k: v for k, v in describe_flatbuffer(blob).items() if k != "weight_tensors"}
        if name in requested:  # measured and written only when asked for (--baselines)
            entry.update(parity(keras_out, tflite_predict(blob, x_test, progress), y_test))
            entry["interpreter"] = INTERPRETERS["tflite"][1]
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
        f"Runs on: {runs_on(r)}.",
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
        f"Parity over {r['test_samples']} test images (needs argmax agreement ≥ "
        f"{r['min_agreement']:.1%} on every interpreter):",
        "",
        "| interpreter | tflite acc | argmax agreement | max abs diff | parity |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [_parity_row(c) for c in r.get("parity", {}).values()]
    lines += [
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


def runs_on(r: dict[str, Any]) -> str:
    """Which interpreters can run the file: LCE ops need LCE's or bitlite's runtime."""
    if r.get("needs_bitlite_runtime"):
        return (
            "needs bitlite_runtime only (custom op BitliteDecodeWeights: k-bit packed "
            "weights); LCE's interpreter and stock TFLite cannot load it"
        )
    if not r["needs_lce"]:
        return "any TFLite interpreter"
    ours = r.get("parity", {}).get(BITLITE, {}).get("ok")
    return (
        f"LCE custom ops ({', '.join(r['custom_ops'])}): LCE's interpreter"
        + (", or bitlite_runtime (parity checked)" if ours else "")
        + "; not the stock TFLite interpreter"
    )


def _parity_row(c: dict[str, Any]) -> str:
    if "error" in c:
        return f"| {c['interpreter']} | – | – | – | cannot run: {c['error']} |"
    return (
        f"| {c['interpreter']} | {c['tflite_accuracy']:.4f} | {c['argmax_agreement']:.4%} | "
        f"{c['max_abs_diff']:.2e} | {'ok' if c['ok'] else 'BROKEN'} |"
    )


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
        *(
            f"  parity {name:<8} argmax agreement {c['argmax_agreement']:.4%}, "
            f"max |diff| {c['max_abs_diff']:.2e} ({c['interpreter']})"
            for name, c in r["parity"].items()
        ),
        f"  binary MACs     {r['binary_mac_fraction']:.1%} of {sum(r['macs'].values()):,}",
        f"  ops             {ops}",
        f"  runs on         {runs_on(r)}",
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
        "--interpreter",
        action="append",
        choices=sorted(INTERPRETERS),
        help="check parity on this interpreter; repeat for several (default: "
        f"{' and '.join(default_interpreters())}); the first one's figures lead the report",
    )
    p.add_argument(
        "--allow-inexact-int8",
        action="store_true",
        help="store weights whose levels do not fit int8 exactly as plain int8 anyway",
    )
    p.add_argument(
        "--pack-weights",
        action="store_true",
        help="store weights of <= 16 levels (ternary, po2, weight-shared) as k-bit codes; "
        "the file then runs only on bitlite_runtime (parity is checked there)",
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
    if not 0 < args.min_agreement <= 1:
        raise UsageError(f"--min-agreement must be in (0, 1], got {args.min_agreement}")
    if args.pack_weights and args.android is not None:
        raise UsageError(
            "--pack-weights files need bitlite_runtime; the Android demo cannot run them"
        )
    assets = android_assets(args.android) if args.android is not None else None
    run = runs.resolve(args.run, root=args.root)
    report = export_run(
        run,
        min_agreement=args.min_agreement,
        progress=not args.quiet,
        baselines=("float", "int8") if args.baselines else (),
        interpreter=args.interpreter,
        allow_inexact=args.allow_inexact_int8,
        pack=args.pack_weights,
    )
    print(summary(run, report))
    if assets is not None:
        copy_to_android(run, assets)
        print(f"copied {runs.TFLITE} and {MODEL_JSON} to {assets}")
    return 0


if __name__ == "__main__":
    cli.run(main)

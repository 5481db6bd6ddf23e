"""``python -m pipeline.export``: a trained run -> ``model.tflite`` checked against Keras.

Conversion is Larq Compute Engine's (binary convolutions become bitpacked
``LceBconv2d``), run in a child process (:mod:`pipeline.convert`). The whole test set then
goes through LCE's interpreter and through Keras; ``export_report.json`` records accuracy
of both, argmax agreement, the largest output difference, size, operators and the share
of multiply-accumulates that are binary. ``model.json`` beside the model tells apps how
to feed it (input shape, normalization, labels).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli, data, runs
from pipeline.errors import ParityError, UsageError

MIN_AGREEMENT = 0.999  # argmax agreement below this fails the export
MODEL_JSON = "model.json"
MODEL_FORMAT = "bitlite-model/1"
ANDROID_ASSETS = Path("app/src/main/assets")  # where android_demo/ bundles the model


def lce_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` (a batch) through LCE's interpreter, one sample at a time."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return np.asarray(Interpreter(flatbuffer, num_threads=1).predict(x, verbose=int(progress)))


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
    return {
        "size_bytes": len(flatbuffer),
        "ops": fb.op_counts(),
        "custom_ops": fb.custom_ops(),
        "macs": macs,
        "binary_mac_fraction": macs["binary"] / total if total else 0.0,
    }


def app_metadata(run: runs.Run, needs_lce: bool) -> dict[str, Any]:
    """The sidecar an app reads: what the model expects and what its outputs mean."""
    config = run.config()
    meta = config["data"]
    return {
        "format": MODEL_FORMAT,
        "model": config["train"]["model"],
        "method": config["train"]["method"],
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
    run: runs.Run, min_agreement: float = MIN_AGREEMENT, progress: bool = False
) -> dict[str, Any]:
    """Convert ``run``'s model, check parity on its test set, write model + reports."""
    from pipeline.convert import convert_file

    model = run.load_model()  # a clear error if the run has not finished training
    flatbuffer = convert_file(run.file(runs.MODEL))
    ds = test_data(run)
    x_test = data.normalize(ds.x_test)
    keras_out = model.predict(x_test, batch_size=256, verbose=0)
    tflite_out = lce_predict(flatbuffer, x_test, progress=progress)
    report = {
        **describe_flatbuffer(flatbuffer),
        **parity(keras_out, tflite_out, ds.y_test),
        "test_samples": int(len(x_test)),
        "min_agreement": min_agreement,
        "interpreter": "larq_compute_engine (x86 reference kernels)",
    }
    report["parity_ok"] = report["argmax_agreement"] >= min_agreement
    runs.write_bytes(run.file(runs.TFLITE), flatbuffer)
    runs.write_json(run.file(MODEL_JSON), app_metadata(run, needs_lce=bool(report["custom_ops"])))
    runs.write_json(run.file(runs.EXPORT_REPORT), report)
    if not report["parity_ok"]:
        raise ParityError(
            f"parity broken: the .tflite agrees with Keras on {report['argmax_agreement']:.2%} "
            f"of {len(x_test)} test images (need {min_agreement:.1%}); see "
            f"{run.file(runs.EXPORT_REPORT)}"
        )
    return report


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
    return "\n".join(
        [
            f"exported {run.file(runs.TFLITE)}",
            f"  size            {report['size_bytes'] / 1024:.1f} KiB",
            f"  accuracy        keras {report['keras_accuracy']:.4f}  tflite {report['tflite_accuracy']:.4f}"
            f"  ({report['test_samples']} test images)",
            f"  parity          argmax agreement {report['argmax_agreement']:.4%}, "
            f"max |diff| {report['max_abs_diff']:.2e}",
            f"  binary MACs     {report['binary_mac_fraction']:.1%} of {sum(report['macs'].values()):,}",
            f"  ops             {ops}",
        ]
    )


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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--android", type=Path, metavar="DIR",
                   help="also bundle the model into the Android demo project DIR")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    assets = android_assets(args.android) if args.android is not None else None
    run = runs.resolve(args.run, root=args.root)
    report = export_run(run, min_agreement=args.min_agreement, progress=not args.quiet)
    print(summary(run, report))
    if assets is not None:
        copy_to_android(run, assets)
        print(f"copied {runs.TFLITE} and {MODEL_JSON} to {assets}")
    return 0


if __name__ == "__main__":
    cli.run(main)

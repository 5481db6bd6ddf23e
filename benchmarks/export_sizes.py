"""Benchmark: what each export costs on disk and in accuracy, on MNIST.

Trains (or reuses) one run per (model, method), exports it with ``--baselines`` and
prints one row per file: the float32 .tflite, the post-training full-int8 .tflite (both
of the float run), and the binary / ternary / other low-bit exports. Sizes are those of
the files; gzip is what an app download costs; accuracy is the .tflite's on the run's
test set, next to the Keras model's (export must lose nothing: ±0.05 pt).

Goals (issue 5): binary LeNet-5 / MLP >= 25× smaller than the float .tflite of the same
network, dense layers included; ternary >= 4×; |tflite − Keras| <= 0.05 pt.

``--pack`` adds a row per low-bit run exported again with ``--pack-weights`` (weights of
<= 16 levels as k-bit codes, ternary: 2 bits) into ``<root>/<model>-<method>-packed``:
such files run only on bitlite_runtime, so their parity is measured there alone.

    python -m benchmarks.export_sizes [--models lenet5 mlp1024] [--methods float bnn twn]
        [--train-samples N] [--epochs E] [--root runs/bench-export] [--pack]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.table import write_table

RESULTS = Path(__file__).parent / "results" / "export_sizes.md"
GOALS = {"binary": 25.0, "ternary": 4.0}
KIND = {
    "bnn": "binary",
    "binaryconnect": "binary",
    "xnor": "binary",
    "bwn": "binary",
    "twn": "ternary",
    "ttq": "ternary",
    "ternary-exact": "ternary",
}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.strip().splitlines()[-1:]}")


def ensure_run(root: Path, model: str, method: str, args: argparse.Namespace) -> Path:
    out = root / f"{model}-{method}"
    if not (out / "model.keras").exists():
        _run(
            [
                sys.executable,
                "-m",
                "pipeline.train",
                "--model",
                model,
                "--method",
                method,
                "--epochs",
                str(args.epochs),
                "--train-samples",
                str(args.train_samples),
                "--out",
                str(out),
                "--quiet",
            ]
            + (["--test-samples", str(args.test_samples)] if args.test_samples else [])
        )
    if not (out / "export_report.json").exists() or args.reexport:
        _run([sys.executable, "-m", "pipeline.export", "--run", str(out), "--baselines", "--quiet"])
    return out


def ensure_packed(run: Path, args: argparse.Namespace) -> Path:
    """A copy of ``run`` (training files only) exported with --pack-weights."""
    out = run.with_name(run.name + "-packed")
    if not (out / "export_report.json").exists() or args.reexport:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(run, out, ignore=shutil.ignore_patterns("*.tflite", "export_report.*"))
        _run([sys.executable, "-m", "pipeline.export", "--run", str(out), "--pack-weights",
              "--quiet"])  # fmt: skip
    return out


def rows_for(model: str, method: str, run: Path, packed: bool = False) -> list[dict]:
    r = json.loads((run / "export_report.json").read_text())
    float_size = r["float_size_bytes"]

    def row(label: str, d: dict, keras: float | None) -> dict:
        return {
            "model": model,
            "export": label,
            "size": d["size_bytes"],
            "gzip": d["gzip_bytes"],
            "ratio": float_size / d["size_bytes"],
            "bits": d["bits_per_weight"],
            "keras": keras,
            "tflite": d.get("tflite_accuracy"),
            "agreement": d.get("parity", {}).get("lce", {}).get("argmax_agreement")
            if "parity" in d
            else d.get("argmax_agreement"),  # baselines: stock TFLite's
            "bitlite": d.get("parity", {}).get("bitlite", {}).get("argmax_agreement"),
        }

    if method == "float":
        return [
            row("float32 (float run)", r, r["keras_accuracy"]),
            row("int8 PTQ (float run)", r["baselines"]["int8"], r["keras_accuracy"]),
        ]
    kind = KIND.get(method, "low-bit")
    label = f"{kind} ({method})"
    if packed:  # the flag packs only weights of <= 16 levels (binary ones are bitpacked)
        label += (", packed k-bit (bitlite_runtime only)" if r["needs_bitlite_runtime"]
                  else ", --pack: nothing to pack")  # fmt: skip
    out = row(label, r, r["keras_accuracy"])
    out["goal"] = GOALS.get(kind)
    return [out]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2%}"


def table(rows: list[dict]) -> str:
    lines = [
        "| model | export | size KiB | gzip KiB | × smaller than float32 | bits/weight | "
        "Keras acc | .tflite acc | Δ pt | argmax agreement | agreement (bitlite_runtime) | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        delta = (r["tflite"] - r["keras"]) * 100 if r["keras"] is not None else float("nan")
        goal = r.get("goal")
        verdict = (
            "" if goal is None else f"≥ {goal:.0f}×: {'met' if r['ratio'] >= goal else 'MISSED'}"
        )
        lines.append(
            f"| {r['model']} | {r['export']} | {r['size'] / 1024:.1f} | {r['gzip'] / 1024:.1f} | "
            f"{r['ratio']:.1f} | {r['bits']:.2f} | {r['keras']:.4f} | {r['tflite']:.4f} | "
            f"{delta:+.2f} | {_pct(r['agreement'])} | {_pct(r['bitlite'])} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["lenet5", "mlp1024"])
    p.add_argument("--methods", nargs="+", default=["float", "bnn", "twn"])
    p.add_argument("--train-samples", type=int, default=10000)
    p.add_argument("--test-samples", type=int, default=0, help="0: the full test set")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--root", type=Path, default=Path("runs/bench-export"))
    p.add_argument("--reexport", action="store_true", help="export again even if reported")
    p.add_argument(
        "--pack", action="store_true", help="also export low-bit runs with --pack-weights"
    )
    args = p.parse_args()
    rows = []
    for model in args.models:
        for method in args.methods:
            run = ensure_run(args.root, model, method, args)
            rows += rows_for(model, method, run)
            if args.pack and method != "float":
                rows += rows_for(model, method, ensure_packed(run, args), packed=True)
    text = table(rows)
    print(text)
    write_table(
        RESULTS,
        "Export sizes and accuracy (MNIST)",
        f"Training: {args.train_samples} images, {args.epochs} epoch(s) — accuracy is that of "
        "short runs; sizes do not depend on training. Parity interpreters: LCE's Python "
        "Interpreter (x86 reference kernels; 'argmax agreement') and bitlite_runtime "
        "(tflite-runtime 2.14 + bitlite kernels) for the exports, stock TFLite for int8; "
        "packed rows run on bitlite_runtime only (LCE's interpreter cannot load "
        "BitliteDecodeWeights; their parity, checked there, is the last agreement column). "
        "Bits/weight count the stored weight codes (int8 and packed: without the "
        "per-channel scales and level tables, which the file size includes). "
        "No timings here.\n\n" + text,
    )


if __name__ == "__main__":
    main()

"""Benchmark: k-bit LeNet-5s on binary kernels (issue 16), MNIST.

Trains (or reuses) one LeNet-5 run per configuration — DoReFa W1A2 and QNN W2A2 by
default — exports it (``python -m pipeline.export``: parity on LCE's interpreter, and on
bitlite_runtime where installed, over the whole test set) and prints one row each: Keras
and .tflite accuracy, argmax agreement, file size and its ratio to the float32 .tflite of
the same network, the share of multiply-accumulates on binary kernels (``LceBconv2d``;
a k-bit layer's k·J binary products all count) and the layers that became binary
products (activation planes × weight planes). Every figure is read from the runs'
``export_report.json``; ``--write`` also saves the table to ``benchmarks/results/kbit.md``.

Goals (issue 16): >= 95 % of MACs binary, agreement >= 99.9 %, size <= 1/16 of float for
W1 and <= 1/10 for W2.

    python -m benchmarks.kbit [--epochs 2] [--train-samples N] [--root runs/bench-kbit]
        [--configs dorefa-w1a2 qnn-w2a2 ...] [--write]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.table import write_table

RESULTS = Path(__file__).parent / "results" / "kbit.md"
# name -> (method, training options, weight bits, activation bits)
CONFIGS: dict[str, tuple[str, list[str], int, int]] = {
    "dorefa-w1a2": ("dorefa", ["--wbits", "1", "--abits", "2"], 1, 2),
    "qnn-w2a2": ("qnn", ["--wbits", "2", "--abits", "2"], 2, 2),
    "dorefa-w2a2": ("dorefa", ["--wbits", "2", "--abits", "2"], 2, 2),
    "dorefa-w1a4": ("dorefa", ["--wbits", "1", "--abits", "4"], 1, 4),
    "twn-a1": ("twn", ["--abits", "1"], 2, 1),
}
SIZE_GOAL = {1: 16.0, 2: 10.0}  # × smaller than float32, by weight bits


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{proc.stderr.strip()[-2000:]}")


def ensure_run(root: Path, name: str, args: argparse.Namespace, trained: list[str]) -> dict:
    """Train and export ``name`` unless its run already has a model / a report; a run
    trained here is added to ``trained`` (the header says which were reused)."""
    method, options, _, _ = CONFIGS[name]
    out = root / f"lenet5-{name}"
    if not (out / "model.keras").exists():
        trained.append(name)
        cmd = [sys.executable, "-m", "pipeline.train", "--model", "lenet5", "--method", method,
               *options, "--epochs", str(args.epochs), "--out", str(out), "--quiet"]  # fmt: skip
        if args.train_samples:
            cmd += ["--train-samples", str(args.train_samples)]
        _run(cmd)
    if not (out / "model.tflite").exists() or args.reexport:  # a failed export writes none
        chosen = [a for name in args.interpreter for a in ("--interpreter", name)]
        _run([sys.executable, "-m", "pipeline.export", "--run", str(out), "--quiet", *chosen])
    return json.loads((out / "export_report.json").read_text())


def _products(report: dict) -> str:
    parts = []
    for p in report["layers"]:
        if p["action"] == "planes->bconv":
            ones = "+1" if p["ones_filter"] else ""
            parts.append(f"{p['kind']} {p['activation_planes']}×{p['weight_planes']}{ones}")
    return ", ".join(parts) or "–"


def row(name: str, r: dict) -> str:
    method, _, wbits, abits = CONFIGS[name]
    ratio = r["ratio_to_float"]
    goal = SIZE_GOAL.get(wbits)
    size_ok = "" if goal is None else f" ({'met' if ratio >= goal else 'MISSED'} ≥ {goal:.0f}×)"
    bitlite = r["parity"].get("bitlite", {}).get("argmax_agreement")
    return (
        f"| {method} | W{wbits}A{abits} | {r['keras_accuracy']:.4f} | {r['tflite_accuracy']:.4f} "
        f"| {r['argmax_agreement']:.2%} | {'–' if bitlite is None else f'{bitlite:.2%}'} "
        f"| {r['size_bytes'] / 1024:.1f} | {ratio:.1f}{size_ok} | {r['binary_mac_fraction']:.1%} "
        f"| {_products(r)} |"
    )


def notes(args: argparse.Namespace, started: float, trained: list[str]) -> list[str]:
    samples = f"{args.train_samples} training images" if args.train_samples else "all 60,000"
    return [
        f"{time.time() - started:.0f} s for this command, which trained "
        f"{', '.join(trained) or 'nothing'} (other runs reused from {args.root}); no timings "
        "here.",
        "",
        f"Training: LeNet-5, {args.epochs} epoch(s), {samples}; accuracy on the 10,000 test "
        "images. Agreement: argmax of the .tflite on LCE's interpreter (x86 reference kernels) "
        "and on bitlite_runtime vs Keras ('–': not checked for that export). Binary MACs: "
        "LceBconv2d's share of all multiply-accumulates per inference, every binary product "
        "counted. Products: per decomposed layer, activation planes × weight planes (+1: an "
        "all-ones filter).",
        "",
        "| method | bits | Keras acc | .tflite acc | agreement (LCE) | agreement (bitlite) "
        "| size KiB | × smaller than float32 | binary MACs | binary products |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS),
                   default=["dorefa-w1a2", "qnn-w2a2"])  # fmt: skip
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-samples", type=int, help="a subset (default: all)")
    p.add_argument("--root", type=Path, default=Path("runs/bench-kbit"))
    p.add_argument("--reexport", action="store_true", help="export again even if reported")
    p.add_argument(
        "--interpreter",
        action="append",
        default=[],
        help="parity interpreter for new exports (repeatable; default: the exporter's, "
        "LCE's and bitlite_runtime where it loads)",
    )
    p.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = p.parse_args()
    started = time.time()
    trained: list[str] = []
    rows = [row(name, ensure_run(args.root, name, args, trained)) for name in args.configs]
    body = "\n".join(notes(args, started, trained) + rows)
    title = "k-bit LeNet-5s on binary kernels (MNIST)"
    print(write_table(RESULTS, title, body) if args.write else body)


if __name__ == "__main__":
    main()

"""Benchmark: k-bit networks on binary kernels (issue 16) — LeNet-5 and VGG-8.

LeNet-5 (``--datasets mnist fashion_mnist``): trains (or reuses) one run per configuration
under ``ROOT/DATASET/lenet5-NAME``, exports it (``python -m pipeline.export``: parity on
LCE's interpreter, and on bitlite_runtime where installed, over the whole test set) and
prints one row each: Keras and .tflite accuracy, argmax agreement, file size and its ratio
to the float32 .tflite of the same network, the share of multiply-accumulates on binary
kernels (``LceBconv2d``; a k-bit layer's binary products all count) and the layers that
became binary products (activation planes × weight planes, and the plane encoding the
cost model picked). The ``float`` configuration is exported with ``--baselines``: its
post-training int8 file is the ``int8`` row. Every figure is read from the runs'
``export_report.json``. ``--speed`` adds host latency (1 thread, every row's file in ONE
interleaved run: float and int8 on LiteRT + XNNPACK, LCE files on bitlite_runtime) and
guest instructions per inference under qemu-aarch64 (exact, repeatable).

VGG-8 (``--vgg8``, CIFAR-10 shape, random weights: speed only): float, int8 and the k-bit
exports built here (:mod:`benchmarks.kbit_speed`), DoReFa W1A2 also with each plane
encoding forced — the measurement behind the per-layer cost model
(:mod:`pipeline.export.plane_cost`). Host latency interleaved and aarch64 instructions,
with the issue's goals: W1A2 ≤ 2.2× W1A1 and faster than int8 on the host, and ≤ 0.5 of
int8's aarch64 instructions.

Goals (issue 16): >= 95 % of MACs binary, agreement >= 99.9 %, size <= 1/16 of float for
W1 and <= 1/10 for W2.

    python -m benchmarks.kbit [--datasets mnist ...] [--configs NAME ...] [--epochs 2]
        [--train-samples N] [--root runs/bench-kbit] [--speed] [--vgg8] [--runs 30]
        [--write] [--out benchmarks/results/kbit.md]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.table import check_out, write_table

RESULTS = Path(__file__).parent / "results" / "kbit.md"
# name -> (method, training options, weight bits, activation bits)
CONFIGS: dict[str, tuple[str, list[str], int, int]] = {
    "float": ("float", [], 32, 32),
    "bnn-w1a1": ("bnn", [], 1, 1),
    "dorefa-w1a2": ("dorefa", ["--wbits", "1", "--abits", "2"], 1, 2),
    # DoReFa keeps the first layer's weights float (the paper's §2.7): this run quantizes
    # it too (int8 in the file; its image bit planes, all MACs binary, are opt-in: slower)
    "dorefa-w1a2-first": (
        "dorefa", ["--wbits", "1", "--abits", "2", "--option", "quantize_first=true"], 1, 2,
    ),  # fmt: skip
    "qnn-w2a2": ("qnn", ["--wbits", "2", "--abits", "2"], 2, 2),
    "dorefa-w2a2": ("dorefa", ["--wbits", "2", "--abits", "2"], 2, 2),
    "dorefa-w1a4": ("dorefa", ["--wbits", "1", "--abits", "4"], 1, 4),
    "twn-a1": ("twn", ["--abits", "1"], 2, 1),
}
DEFAULT_CONFIGS = ["float", "bnn-w1a1", "dorefa-w1a2", "dorefa-w1a2-first", "dorefa-w2a2",
                   "qnn-w2a2", "twn-a1"]  # fmt: skip
SIZE_GOAL = {1: 16.0, 2: 10.0}  # × smaller than float32, by weight bits
INT8 = "float-int8"  # the float run's post-training int8 baseline, as a row
INT8_TF = "int8, TensorFlow's tf.lite"  # VGG-8's int8 file on TF's own XNNPACK build


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{proc.stderr.strip()[-2000:]}")


def run_dir(root: Path, dataset: str, name: str) -> Path:
    return root / dataset / f"lenet5-{name}"


def ensure_run(root: Path, dataset: str, name: str, args: argparse.Namespace,
               trained: list[str]) -> dict:  # fmt: skip
    """Train and export ``name`` unless its run already has a model / a report; a run
    trained here is added to ``trained`` (the header says which were reused)."""
    method, options, _, _ = CONFIGS[name]
    out = run_dir(root, dataset, name)
    if not (out / "model.keras").exists():
        trained.append(f"{dataset}/{name}")
        cmd = [sys.executable, "-m", "pipeline.train", "--model", "lenet5", "--method", method,
               "--dataset", dataset, *options, "--epochs", str(args.epochs), "--out", str(out),
               "--quiet"]  # fmt: skip
        if args.train_samples:
            cmd += ["--train-samples", str(args.train_samples)]
        _run(cmd)
    if not (out / "model.tflite").exists() or args.reexport:  # a failed export writes none
        chosen = [a for i in args.interpreter for a in ("--interpreter", i)]
        baselines = ["--baselines"] if name == "float" else []
        _run([sys.executable, "-m", "pipeline.export", "--run", str(out), "--quiet",
              *baselines, *chosen])  # fmt: skip
    return json.loads((out / "export_report.json").read_text())


def products(report: dict) -> str:
    parts = []
    for p in report.get("layers", []):
        if p["action"] == "planes->bconv":
            ones = "+1" if p["ones_filter"] else ""
            code = {"thermometer": " thermo", "binary": ""}.get(p.get("encoding", ""), "")
            parts.append(f"{p['kind']} {p['activation_planes']}×{p['weight_planes']}{ones}{code}")
    return ", ".join(parts) or "–"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def row(name: str, r: dict, speed: dict | None) -> str:
    """One table row; ``r``: an export report (or the int8 baseline's entry)."""
    if name == INT8:
        label, wbits, abits = "float → int8 (PTQ)", 8, 8
    else:
        label, (_, _, wbits, abits) = name, CONFIGS[name]
    ratio = r.get("ratio_to_float")
    goal = SIZE_GOAL.get(wbits)
    size_ok = "" if goal is None or ratio is None else (
        f" ({'met' if ratio >= goal else 'MISSED'} ≥ {goal:.0f}×)")  # fmt: skip
    bitlite = r.get("parity", {}).get("bitlite", {}).get("argmax_agreement")
    cells = [
        label, f"W{wbits}A{abits}", f"{r['keras_accuracy']:.4f}", f"{r['tflite_accuracy']:.4f}",
        _pct(r.get("argmax_agreement")), _pct(bitlite), f"{r['size_bytes'] / 1024:.1f}",
        "–" if ratio is None else f"{ratio:.1f}{size_ok}", f"{r['binary_mac_fraction']:.1%}",
        products(r),
    ]  # fmt: skip
    if speed is not None:
        ms, engine = speed["host"].get(name, (None, ""))
        count, ok = speed["qemu"].get(name, (None, ""))
        cells += ["–" if ms is None else f"{ms:.3f}", engine,
                  "–" if count is None else f"{count:,} ({ok})"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def _int8_entry(float_report: dict) -> dict | None:
    entry = float_report.get("baselines", {}).get("int8")
    if not entry or "tflite_accuracy" not in entry:
        return None
    return {**entry, "keras_accuracy": float_report["keras_accuracy"],
            "ratio_to_float": float_report["float_size_bytes"] / entry["size_bytes"]}  # fmt: skip


def lenet_section(dataset: str, args: argparse.Namespace, trained: list[str]) -> str:
    reports = {n: ensure_run(args.root, dataset, n, args, trained) for n in args.configs}
    if "float" in reports and (int8 := _int8_entry(reports["float"])) is not None:
        reports = {"float": reports.pop("float"), INT8: int8, **reports}
    speed = lenet_speed(dataset, reports, args) if args.speed else None
    head = ("| run | bits | Keras acc | .tflite acc | agreement (LCE) | agreement (bitlite) "
            "| size KiB | × smaller than float32 | binary MACs | binary products |")  # fmt: skip
    rule = "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    if speed is not None:
        head += " host ms (1 thread) | host engine | aarch64 instructions (parity) |"
        rule += "---:|---|---:|"
    rows = [row(n, r, speed) for n, r in reports.items()]
    return "\n".join([f"### LeNet-5, {dataset}", "", head, rule, *rows, ""])


def lenet_speed(dataset: str, reports: dict, args: argparse.Namespace) -> dict:
    from benchmarks import kbit_speed

    paths = {}
    for name in reports:
        run = run_dir(args.root, dataset, "float" if name == INT8 else name)
        paths[name] = run / ("model_int8.tflite" if name == INT8 else "model.tflite")
    host = kbit_speed.host_latency(paths, args.runs, args.cpu_time)
    qemu = kbit_speed.instructions(paths) if args.aarch64 else {}
    return {"host": host, "qemu": qemu}


def vgg8_section(args: argparse.Namespace) -> str:
    from benchmarks import kbit_speed
    from benchmarks.kernels import int8_units, peak_bench, units_line
    from pipeline.tflite.reader import read_model

    names = list(kbit_speed.VGG_VARIANTS)
    with tempfile.TemporaryDirectory(prefix="bitlite-kbit-vgg8-") as tmp:
        paths, plans = kbit_speed.build_vgg8(Path(tmp), names)
        rows: dict[str, Path] = {}
        for name, path in paths.items():
            rows[name] = path
            if name == "int8":  # the same file on TensorFlow's tf.lite: another XNNPACK build
                rows[INT8_TF] = path
        paths = rows
        host = kbit_speed.host_latency(paths, args.runs, args.cpu_time, {INT8_TF: "tf"})
        units = int8_units({"int8": paths["int8"]})
        qemu = kbit_speed.instructions({k: v for k, v in paths.items() if k != INT8_TF}
                                       ) if args.aarch64 else {}  # fmt: skip
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        fused_macs = (read_model(paths[kbit_speed.FUSED].read_bytes()).macs()["binary"]
                      if kbit_speed.FUSED in paths else 0)  # fmt: skip
    lines = ["### VGG-8 (32×32×3, random weights: speed only)", "", units_line(units), "",
             "| export | size KiB | host ms (1 thread) | host engine | × W1A1 host (faster one) "
             "| int8 LiteRT / this | int8 TF / this | aarch64 instructions (parity) "
             "| this / int8 aarch64 | plane encodings (cost model's pick per k-bit layer) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    # the W1A1 reference: its faster export (first layer on pixel planes or int8)
    w1a1 = min(v[0] for k, v in host.items() if k.startswith("W1A1"))
    int8, int8_tf = host["int8"][0], host[INT8_TF][0]
    q_int8 = qemu.get("int8", (None,))[0]
    for name in paths:
        ms, engine = host[name]
        count, ok = qemu.get(name, (None, "–"))
        encodings = ", ".join(sorted({p.get("encoding") for p in plans.get(name, [])
                                      if p.get("encoding")})) or "–"  # fmt: skip
        if name == kbit_speed.FUSED:  # the thermometer export, rewritten (kbit_chains.py)
            encodings = f"bit planes in bitlite's fused op (rewritten from {encodings})"
        lines.append(
            f"| {name} | {sizes[name] / 1024:.1f} | {ms:.3f} | {engine} | {ms / w1a1:.2f}× "
            f"| {int8 / ms:.2f}× | {int8_tf / ms:.2f}× "
            f"| {'–' if count is None else f'{count:,} ({ok})'} "
            f"| {'–' if count is None or not q_int8 else f'{count / q_int8:.3f}'} | {encodings} |"
        )
    # like with like: both first layers int8 (DoReFa's own first layer is float)
    pair = "W1A2 (dorefa), first layer int8"
    w1a1 = host["W1A1 (bnn), first layer int8"][0]
    w1a2 = host[pair][0]
    q_w1a2 = qemu.get(pair, (None,))[0]
    goals = [
        f"first layers int8: W1A2 / W1A1 host latency {w1a2 / w1a1:.2f}× "
        f"({'met' if w1a2 / w1a1 <= 2.2 else 'MISSED'} ≤ 2.2×)",
        f"W1A2 vs int8 on LiteRT's XNNPACK: {int8 / w1a2:.2f}× as fast "
        f"({'met' if w1a2 < int8 else 'MISSED'}: faster), on TF's: {int8_tf / w1a2:.2f}×",
    ]
    if q_w1a2 and q_int8:
        goals.append(f"W1A2 / int8 aarch64 instructions {q_w1a2 / q_int8:.3f} "
                     f"({'met' if q_w1a2 / q_int8 <= 0.5 else 'MISSED'} ≤ 0.5)")  # fmt: skip
    if kbit_speed.FUSED in host:
        fused = host[kbit_speed.FUSED][0]
        goals.append(f"the same with the fused k-bit op (bitlite's runtime only): W1A2 / W1A1 "
                     f"{fused / w1a1:.2f}× ({'met' if fused / w1a1 <= 2.2 else 'MISSED'} ≤ 2.2×), "
                     f"{int8 / fused:.2f}× as fast as int8 on LiteRT's XNNPACK "
                     f"({'met' if fused < int8 else 'MISSED'}: faster), {int8_tf / fused:.2f}× "
                     f"as fast as int8 on TF's XNNPACK ({'met' if fused < int8_tf else 'MISSED'}: "
                     "faster)")  # fmt: skip
    lines += ["", "Goals (issue 16): " + "; ".join(goals) + "."]
    if kbit_speed.FUSED in host:
        lines += ["", ceiling_note(fused_macs, peak_bench(), host[kbit_speed.FUSED][0], int8)]
    return "\n".join(lines + [""])


def ceiling_note(macs: int, peaks: dict[str, float], fused_ms: float, int8_ms: float) -> str:
    """How near the fused W1A2 file (``macs`` binary products per inference, every one
    counted) runs to this core's binary ceiling (``peaks``: G MAC/s per sequence of
    ``runtime/check/peak_bench.cc``) over its whole invoke, and how near it would have to
    run to beat int8 on LiteRT's XNNPACK."""
    if "binary_avx512" not in peaks:
        return "Ceiling: this CPU has no AVX-512 VPOPCNTDQ (no binary ceiling measured)."
    peak = peaks["binary_avx512"] * 1e9  # binary MAC/s
    floor_ms, reached = macs / peak * 1e3, macs / (fused_ms / 1e3) / peak
    needed = macs / (int8_ms / 1e3) / peak
    amx = (f" (the AMX int8 ceiling is {peaks['int8_amx'] / peaks['binary_avx512']:.2f}× this "
           "binary one on equal MACs)" if "int8_amx" in peaks else "")  # fmt: skip
    return (f"Ceiling (`runtime/check/peak_bench.cc`, 1 thread, measured in this command): "
            f"the fused W1A2 file computes {macs / 1e9:.3f} G binary products per inference; "
            f"at this core's AVX-512 XOR+VPOPCNT+ADD ceiling ({peak / 1e9:,.0f} G/s, operands "
            f"in registers) they alone take at least {floor_ms:.3f} ms. Its whole invoke "
            f"({fused_ms:.3f} ms) runs them at {reached:.0%} of that ceiling; being faster than "
            f"int8 on LiteRT's XNNPACK ({int8_ms:.3f} ms){amx} needs {needed:.0%} of it over "
            "the whole invoke, its first float layer, quantizer and head included.")


def notes(args: argparse.Namespace, started: float, trained: list[str]) -> str:
    samples = f"{args.train_samples} training images" if args.train_samples else "all 60,000"
    return "\n".join([
        f"{time.time() - started:.0f} s for this command, which trained "
        f"{', '.join(trained) or 'nothing'} (other runs reused from {args.root}).",
        "",
        f"Training: LeNet-5, {args.epochs} epoch(s), {samples}; accuracy on the 10,000 test "
        "images. Agreement: argmax of the .tflite on LCE's interpreter (x86 reference kernels) "
        "and on bitlite_runtime vs Keras ('–': not checked for that export). Binary MACs: "
        "LceBconv2d's share of all multiply-accumulates per inference, every binary product "
        "counted. Products: per decomposed layer, activation planes × weight planes (+1: an "
        "all-ones filter; thermo: thermometer planes on the channel axis, else bit planes on "
        "the batch axis). The int8 row is the float run's post-training int8 file.",
        f"Host latency: median {'CPU time' if args.cpu_time else 'wall time'} over "
        "interleaved rounds at 1 thread on a shared machine (see the load above): compare "
        "ratios within one table. aarch64 instructions: guest "
        "instructions per inference under qemu-aarch64 (tflite-runtime's ARM wheel, "
        "bitlite's library cross-built), exact; parity: outputs vs the host's.",
        "",
    ])  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=DEFAULT_CONFIGS)
    p.add_argument("--datasets", nargs="*", choices=["mnist", "fashion_mnist"],
                   default=["mnist"])  # fmt: skip
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
    p.add_argument("--speed", action="store_true", help="LeNet rows: host latency too")
    p.add_argument("--aarch64", action="store_true",
                   help="with --speed / --vgg8: qemu-aarch64 instruction counts (minutes)")  # fmt: skip
    p.add_argument("--vgg8", action="store_true", help="the VGG-8 speed section")
    p.add_argument("--encodings", action="store_true",
                   help="single layers with each plane encoding forced vs the cost model")  # fmt: skip
    p.add_argument("--runs", type=int, default=30, help="interleaved host rounds")
    p.add_argument("--cpu-time", action="store_true",
                   help="host ms as this process's CPU time per invoke (1 thread: robust "
                   "to other processes' load), not wall time")  # fmt: skip
    p.add_argument("--write", action="store_true", help="write the table to --out")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.epochs < 1 or args.runs < 1:
        p.exit(2, "error: --epochs and --runs must be at least 1\n")
    if args.write:
        check_out(args.out)  # before minutes of training and timing, not after
    started = time.time()
    trained: list[str] = []
    sections = [lenet_section(d, args, trained) for d in args.datasets]
    if args.encodings:
        from benchmarks.kbit_speed import encoding_section

        sections.append(encoding_section(args.runs, args.aarch64))
    if args.vgg8:
        sections.append(vgg8_section(args))
    body = notes(args, started, trained) + "\n".join(sections)
    title = "k-bit networks on binary kernels"
    print(write_table(args.out, title, body) if args.write else body)


if __name__ == "__main__":
    main()

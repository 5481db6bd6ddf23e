"""Latency and emulated-AArch64 cost of float, int8 and binary exports of the same nets.

    python -m benchmarks.latency                      # LeNet-5 (MNIST) and VGG-8 (CIFAR-10)
    python -m benchmarks.latency --run runs/bnn-lenet5 --run runs/float-lenet5
    python -m benchmarks.latency --run runs/bnn-lenet5 --models vgg8   # both
    python -m benchmarks.latency --out benchmarks/results/latency.md

For each network: host latency of the float and int8 exports on stock TFLite (XNNPACK
where it applies) and of the binary export on bitlite's runtime and on LCE's own
interpreter (labelled: on x86 that is LCE's portable reference code, not a device
figure); then guest instructions per inference of all three on emulated AArch64
(qemu-aarch64 + the icount plugin), with outputs checked against the host's. Ratios are
against the float export.

Without ``--run`` the networks are built here from the models registry with the
``float`` and ``bnn`` methods and converted untrained: latency and instruction counts do
not depend on weight values (int8 calibration uses real MNIST images for LeNet-5 and
uniform [-1, 1] noise for the 32×32 nets). With ``--run DIR`` a run's own exports are
used (model_float.tflite, model_int8.tflite, model.tflite — whichever exist).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.table import write_table
from pipeline.bench.cli import EXPORTS
from pipeline.bench.targets import make_target
from pipeline.bench.targets.base import Measurement, Settings
from pipeline.bench.targets.measure import measure

KINDS = ("float", "int8", "binary")
DEFAULT_MODELS = "lenet5,vgg8"


def build_exports(name: str, out: Path) -> dict[str, Path]:
    """float / int8 / binary .tflite of one architecture, built and converted here."""
    import tensorflow as tf

    from models.registry import build_model
    from pipeline.export.convert import convert_model
    from pipeline.methods import make_method

    shape = (28, 28, 1) if name == "lenet5" else (32, 32, 3)

    def make(method: str):
        return build_model(name, make_method(method), shape, 10)

    tf.keras.utils.set_random_seed(0)
    float_model = make("float")
    paths = {kind: out / f"{name}_{kind}.tflite" for kind in KINDS}
    paths["float"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(float_model).convert())
    calibration = _calibration(shape)
    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in calibration)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    paths["int8"].write_bytes(conv.convert())
    paths["binary"].write_bytes(convert_model(make("bnn")))
    return paths


def _calibration(shape: tuple[int, ...]) -> np.ndarray:
    if shape == (28, 28, 1):
        from pipeline.data import load_dataset, normalize

        return normalize(load_dataset("mnist").x_test[:100])
    return np.random.default_rng(0).uniform(-1, 1, (100, *shape)).astype(np.float32)


def run_exports(run: Path) -> dict[str, Path]:
    from pipeline.tflite.reader import read_model

    found = {kind: run / name for kind, name in EXPORTS.items() if (run / name).exists()}
    # a float run's model.tflite is its float export again, not a binary one
    if "binary" in found and not read_model(found["binary"].read_bytes()).macs()["binary"]:
        del found["binary"]
    if not found:
        raise SystemExit(f"{run} has none of {', '.join(EXPORTS.values())}")
    return found


def bench_subject(exports: dict[str, Path], runs: int, qemu_runs: int) -> dict[str, dict]:
    """host (auto engine), host with LCE's interpreter (binary only), qemu-aarch64."""
    host, qemu = make_target("host"), make_target("qemu-aarch64", progress=_log)
    rows: dict[str, dict] = {}
    for kind, path in exports.items():
        _log(f"  {path.name}: host")
        row = {"host": measure(path, host, Settings(runs=runs, warmup=5))}
        if kind == "binary":
            _log(f"  {path.name}: host, LCE interpreter")
            row["lce"] = measure(path, host, Settings(runs=runs, warmup=5, engine="lce"))
        _log(f"  {path.name}: qemu-aarch64")
        row["qemu"] = measure(path, qemu, Settings(runs=qemu_runs, warmup=1))
        rows[kind] = row
    return rows


def _ms(m: Measurement | None, key: str = "median_ms") -> str:
    value = None if m is None else m.latency()[key]
    return "—" if value is None else f"{value:.3f}"


def parity_cell(m: Measurement) -> str:
    """A table cell: did the target's outputs match the host's, and by how much."""
    if not m.parity or m.parity.get("ok") is None:
        return "not checked"
    word = "ok" if m.parity["ok"] else "FAIL"
    how = "top-1 same, " if m.parity.get("criterion") == "top-1" else ""
    return f"{word} ({how}max diff {m.parity['max_abs_diff']:.1e})"


def weight_facts(path: Path) -> str:
    """Share of multiply-accumulates that are binary, and bytes held in float32 weights."""
    from pipeline.tflite.reader import read_model

    model = read_model(path.read_bytes())
    macs = model.macs()
    share = macs["binary"] / max(1, sum(macs.values()))
    float_bytes = sum(len(t.data) for t in model.tensors if t.data and t.dtype == "float32")
    return (f"{share:.0%} of its multiply-accumulates are binary; {float_bytes / 1024:.0f} KiB "
            f"of its {model.size_bytes / 1024:.0f} KiB are float32 weights")  # fmt: skip


def test_accuracy(path: Path) -> str:
    """The export's test accuracy from its run's export_report.json ("—" for built nets)."""
    report = path.parent / "export_report.json"
    if not report.exists():
        return "—"
    r = json.loads(report.read_text())
    entries = [r] + list(r.get("baselines", {}).values())
    found = [e["tflite_accuracy"] for e in entries
             if e.get("file", "model.tflite") == path.name and "tflite_accuracy" in e]  # fmt: skip
    return f"{found[0]:.2%}" if found else "—"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if not a or not b else f"{a / b:.2f}×"


def markdown(results: dict[str, dict[str, dict]], runs: int) -> str:
    any_host = next(iter(next(iter(results.values())).values()))["host"]
    any_qemu = next(iter(next(iter(results.values())).values()))["qemu"]
    lines = [
        f"Host: {any_host.cpu} ({platform.machine()}), {any_host.os}; 1 thread.",
        "",
        "**The host CPU is shared and contended** (2 cores, several jobs): host latencies are "
        f"medians of {runs} inferences and only comparable within one table. An inference = "
        "set input + invoke + read output. Host figures are x86 figures, not device "
        "latency; LCE's interpreter on x86 runs its portable reference kernels and is "
        "labelled so. The emulated-AArch64 column is guest instructions per inference "
        f"({any_qemu.cpu}, tflite-runtime 2.14.0 ARM wheel; binary models on bitlite's "
        "runtime cross-built for AArch64), counted by the icount plugin: exact and "
        "repeatable, but an instruction count, not a time.",
        "",
        "| network | export | test acc. | size KiB | host median ms | host p90 ms | host kernels "
        "| LCE interpreter median ms | aarch64 instr/inference | aarch64 kernels | parity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for kind, row in rows.items():
            host, lce, qemu = row["host"], row.get("lce"), row["qemu"]
            parity = parity_cell(qemu)
            lce_cell = "—" if lce is None else f"{_ms(lce)} ({lce.kernels})"
            lines.append(
                f"| {name} | {kind} | {test_accuracy(Path(host.model))} "
                f"| {host.size_bytes / 1024:.1f} | {_ms(host)} | "
                f"{_ms(host, 'p90_ms')} | {host.kernels} | {lce_cell} | "
                f"{qemu.instructions_per_invoke:,} | {qemu.kernels} | {parity} |"
            )
    lines += ["", "Ratios against the float export (higher = the other export is cheaper):", "",
              "| network | ratio | host latency | size | aarch64 instructions |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, rows in results.items():
        if "float" not in rows:
            continue
        f = rows["float"]
        for kind in ("int8", "binary"):
            if kind not in rows:
                continue
            o = rows[kind]
            lines.append(
                f"| {name} | float/{kind} | "
                f"{_ratio(f['host'].latency()['median_ms'], o['host'].latency()['median_ms'])} | "
                f"{_ratio(f['host'].size_bytes, o['host'].size_bytes)} | "
                f"{_ratio(f['qemu'].instructions_per_invoke, o['qemu'].instructions_per_invoke)} |"
            )
    lines += ["", "Notes:", "",
              "- Parity: outputs of the emulated AArch64 run against the host's for the same "
              "input; float to 1e-3, int8 to one quantization step, binary by top-1 class "
              "(a binary activation is the sign of a float; float kernels on different CPUs "
              "round values near zero differently, so a few signs flip and the softmax "
              "scores move while the class stays)."]  # fmt: skip
    if any("no delegate" in row["host"].kernels for rows in results.values()
           for row in rows.values()):  # fmt: skip
        lines.append("- int8 rows: tflite-runtime 2.14's Python interpreter applied no XNNPACK "
                     "delegate to these int8 graphs, so they ran on TFLite's builtin int8 "
                     "kernels; int8 on XNNPACK is not measured here.")  # fmt: skip
    for name, rows in results.items():
        if "binary" in rows:
            facts = weight_facts(Path(rows["binary"]["host"].model))
            lines.append(f"- {name} binary export: {facts}.")
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", type=Path, default=[],
                   help="a run directory with exports (repeatable); default: build nets here")
    p.add_argument("--models", help="nets to build here, comma-separated "
                   "(default: lenet5,vgg8 without --run, none with it)")
    p.add_argument("--runs", type=int, default=50, help="timed host inferences")
    p.add_argument("--qemu-runs", type=int, default=3, help="timed emulated inferences")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args()  # fmt: skip
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bitlite-latency-") as tmp:
        subjects = {run.name: run_exports(run) for run in args.run}
        built = args.models if args.models is not None else "" if args.run else DEFAULT_MODELS
        for name in filter(None, built.split(",")):
            _log(f"building {name}: float, int8 and binary exports")
            subjects[name] = build_exports(name, Path(tmp))
        for name, exports in subjects.items():
            _log(f"benchmarking {name}")
            results[name] = bench_subject(exports, args.runs, args.qemu_runs)
        body = markdown(results, args.runs)  # reads the exports: inside
    title = "Latency: float vs int8 vs binary"
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

"""Overhead of bitlite's TFLite delegate against the registration it replaced.

Until the delegate, bitlite's kernels were registered as custom ops through
tflite-runtime 2.14's C++ ``MutableOpResolver::AddCustom`` (found with dladdr). This
builds that library from the last commit that had it (``OLD_COMMIT``, sources read with
``git show``) and times one model, interleaved, through:

* the old registration in tflite-runtime 2.14 (``InterpreterWithCustomOps``);
* the delegate as merged (``MERGE_COMMIT``, built the same way, loaded with tflite-runtime
  2.14's ``load_delegate``): the merge changed only the glue, so against the old
  registration this is the mechanism alone, the issue's overhead goal (<= 5 %);
* today's delegate in tflite-runtime 2.14 (the mechanism and every kernel change since);
* the delegate in every other host runtime installed (LiteRT, tf.lite).

    python -m benchmarks.delegate_overhead [--model lenet5] [--runs 2000] [--block 20] [--threads 1]

The model is the default export (LeNet-5, BNN: ``python -m pipeline.train``'s default),
untrained, converted with LCE here. Each sample is the mean of ``--block`` invokes of one
image; the table gives the median sample. The CPU is shared and x86: absolute times say
nothing about a device, the ratios come from one interleaved run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from benchmarks.table import write_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))  # this checkout's runtime, not an installed one

OLD_COMMIT = "3e4a1f8"  # last commit with runtime/src/lce_ops.cc's bitlite_register
OLD = "old registration (tflite-runtime 2.14)"
# The delegate's merge changed only the glue: with the same kernels as OLD_COMMIT, this row
# against OLD is the mechanism alone; today's delegate rows add every kernel change since.
MERGE_COMMIT = "86db3d1"
MERGED = f"delegate as merged ({MERGE_COMMIT}, same kernels; tflite-runtime 2.14)"
OLD_FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fPIC", "-shared",
             "-fvisibility=hidden", "-pthread"]


def build_library_at(commit: str, out: Path, name: str) -> Path:
    """runtime/src as `commit` had it (read with git show), compiled with OLD_FLAGS into
    out/name; a delegate build exports only what its version script lists, as it did."""
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", commit,
                              "runtime/src/"], capture_output=True, text=True, check=True)
    src = out / "src"
    src.mkdir(parents=True)
    for path in listing.stdout.split():
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
                              capture_output=True, check=True).stdout
        (src / Path(path).name).write_bytes(blob)
    exports = src / "bitlite_delegate.map"
    link = [f"-Wl,--version-script={exports}"] if exports.exists() else ["-ldl"]
    library = out / name
    cxx = os.environ.get("CXX", "c++")
    subprocess.run([cxx, *OLD_FLAGS, *map(str, sorted(src.glob("*.cc"))), *link, "-o",
                    str(library)], check=True)  # fmt: skip
    return library


def build_old_library(out: Path) -> Path:
    """The pre-delegate library (AddCustom registration), compiled as it was."""
    return build_library_at(OLD_COMMIT, out / "old", "libbitlite_lce.so")


def build_merged_delegate(out: Path) -> Path:
    """The delegate as merged: its glue over OLD_COMMIT's kernels."""
    return build_library_at(MERGE_COMMIT, out / "merged", "libbitlite_delegate.so")


def export(model: str) -> bytes:
    """The binary (LCE) export of `model` with the BNN method, untrained (seed 0)."""
    import tensorflow as tf

    from models.registry import build_model
    from pipeline.export.convert import convert_model
    from pipeline.methods import make_method

    tf.keras.utils.set_random_seed(0)
    shape = (28, 28, 1) if model == "lenet5" else (32, 32, 3)
    return convert_model(build_model(model, make_method("bnn"), shape, 10))


def _ready(interpreter, x: np.ndarray):
    """The host interpreter, allocated, with `x` as its input."""
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    return interpreter


def old_engine(library: Path, model: bytes, x: np.ndarray, threads: int):
    from tflite_runtime.interpreter import InterpreterWithCustomOps

    lib = ctypes.CDLL(str(library))
    lib.bitlite_register.argtypes = [ctypes.c_void_p]

    def register(resolver: int) -> None:
        if lib.bitlite_register(ctypes.c_void_p(resolver)) != 0:
            raise RuntimeError("old registration failed")

    return _ready(InterpreterWithCustomOps(model_content=model, num_threads=threads,
                                           custom_op_registerers=[register]), x)


def merged_engine(library: Path, model: bytes, x: np.ndarray, threads: int):
    """The merged delegate through tflite-runtime's own load_delegate (its plugin entry
    points), as a user with their own interpreter would load it."""
    from tflite_runtime.interpreter import Interpreter, load_delegate

    delegate = load_delegate(str(library), {"num_threads": str(threads)})
    return _ready(Interpreter(model_content=model, num_threads=threads,
                              experimental_delegates=[delegate]), x)  # fmt: skip


def delegate_engine(host: str, model: bytes, x: np.ndarray, threads: int):
    from bitlite_runtime import Interpreter, probe

    interpreter = Interpreter(model, num_threads=threads, host=host)
    _ready(interpreter._interpreter, x)
    return interpreter._interpreter, len(probe(interpreter.delegate)["kernels"])


def what_ran(interpreter, bitlite_kernels: int | None) -> str:
    """Who runs the graph: bitlite's delegate kernels (or the old custom ops), the host's
    other delegate partitions (XNNPACK) and its builtin kernels."""
    delegated = [op["op_name"] for op in interpreter._get_ops_details()].count("DELEGATE")
    if bitlite_kernels is None:  # the old registration: our ops are plain custom ops
        return f"{_lce_ops(interpreter)} custom ops, {delegated} XNNPACK partition(s)"
    return f"{bitlite_kernels} delegate kernels, {delegated - bitlite_kernels} XNNPACK partition(s)"


def _lce_ops(interpreter) -> int:
    """LCE's ops in the interpreter's graph that no delegate has replaced."""
    return sum(op["op_name"].startswith("Lce") for op in interpreter._get_ops_details())


def measure(engines: dict[str, Any], runs: int, block: int) -> dict[str, float]:
    """Median over `runs` interleaved samples of the mean invoke time of `block` invokes;
    first checks that every engine computes the same output."""
    outputs = []
    for it in engines.values():
        for _ in range(5):
            it.invoke()  # warm up: first invokes pack filters and fault pages in
        outputs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    for name, out in zip(engines, outputs, strict=True):
        # other hosts' XNNPACK builds may round the float ops differently
        if not np.allclose(out, outputs[0], rtol=1e-5, atol=1e-6):
            raise SystemExit(f"{name} computes a different output than the old registration: "
                             f"max |diff| {np.max(np.abs(out - outputs[0])):.3g}")
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(runs):
        for name, it in engines.items():
            invoke = it.invoke
            t = time.perf_counter()
            for _ in range(block):
                invoke()
            samples[name].append((time.perf_counter() - t) / block)
    return {name: 1e3 * float(np.median(s)) for name, s in samples.items()}


def table(ms: dict[str, float], ran: dict[str, str], threads: int) -> str:
    base = ms[OLD]
    lines = [
        f"Batch 1, {threads} thread(s), bitlite kernel {_kernel()}; median of interleaved "
        "samples. x86 host timings, not a device speed. The old registration and the "
        f"delegate as merged are built from commits {OLD_COMMIT} and {MERGE_COMMIT} (the same "
        "kernels): their ratio is the mechanism's overhead; today's delegate rows add every "
        "kernel change since.", "",
        "| engine | what ran | latency (ms) | vs old registration |",
        "|---|---|---:|---:|",
    ]
    for name, value in ms.items():
        lines.append(f"| {name} | {ran[name]} | {value:.4f} | {100 * (value / base - 1):+.1f} % |")
    return "\n".join(lines) + "\n"


def _kernel() -> str:
    from bitlite_runtime import kernel_name

    return kernel_name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from bitlite_runtime import hosts

    model = export(args.model)
    with tempfile.TemporaryDirectory(prefix="bitlite-old-") as tmp:
        old = build_old_library(Path(tmp))
        shape = [1, *((28, 28, 1) if args.model == "lenet5" else (32, 32, 3))]
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        old_it = old_engine(old, model, x, args.threads)
        engines = {OLD: old_it}
        ran = {OLD: what_ran(old_it, None)}
        engines[MERGED] = merged_engine(build_merged_delegate(Path(tmp)), model, x, args.threads)
        # every Lce op is claimed, or construction fails: as many kernels as old custom ops
        ran[MERGED] = what_ran(engines[MERGED], _lce_ops(old_it))
        for host in hosts.installed():
            name = f"delegate ({host} {hosts.resolve(host).version})"
            engines[name], kernels = delegate_engine(host, model, x, args.threads)
            ran[name] = what_ran(engines[name], kernels)
        ms = measure(engines, args.runs, args.block)
    title = f"bitlite delegate vs the old registration ({args.model}, BNN)"
    body = table(ms, ran, args.threads)
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

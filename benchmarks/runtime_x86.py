"""Runtime benchmark on this x86-64 host: binary VGG-8 (CIFAR-10) through bitlite_runtime,
against the same architecture's int8 and float exports on LiteRT + XNNPACK, and
against LCE's own x86 interpreter running the same binary model.

    python -m benchmarks.runtime_x86 [--runs 30] [--threads 1] [--out benchmarks/results/runtime_x86.md]

Latency is the median of --runs single-image invokes after warm-up. This CPU is shared
with other jobs, so absolute times are noisy; the ratios were measured in one run,
interleaved, so they share its conditions. LCE's x86 interpreter is a portable build:
its numbers are what LCE gives on x86, not a device speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from benchmarks.table import cpu_name, write_table

# This checkout's runtime (its kernels are what is measured), not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

MODEL = "vgg8"  # the registered CIFAR-10 net (seed 004 table 2), untrained
SHAPE = (32, 32, 3)


def exports() -> dict[str, bytes]:
    """binary (LCE, bitlite's export rewrite), float and int8 (TFLite full-integer)."""
    import tempfile

    from benchmarks.latency import build_exports

    with tempfile.TemporaryDirectory(prefix="bitlite-rt-") as tmp:
        return {kind: path.read_bytes() for kind, path in build_exports(MODEL, Path(tmp)).items()}


def timer(name: str, model: bytes, engine: str, threads: int):
    """A zero-argument callable that runs one invoke, and a description."""
    if engine == "bitlite":
        from bitlite_runtime import Interpreter, kernel_name

        it = Interpreter(model, num_threads=threads)
        detail = it.input_details[0]
        x = np.zeros(detail["shape"], detail["dtype"])
        return (lambda: it.invoke(x)), f"bitlite_runtime ({kernel_name()} kernel)"
    if engine == "lce":
        from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

        it = LceInterpreter(model, num_threads=threads)
        x = np.zeros((1, *SHAPE), np.float32)
        return (lambda: it.predict(x)), "LCE 0.16 x86 interpreter"
    # int8 and float on LiteRT (its XNNPACK delegate runs int8 too; tflite-runtime 2.14's
    # Python interpreter applies no XNNPACK to int8 graphs, which made int8 look slow).
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=threads)  # default delegates: XNNPACK
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    delegated = any(op["op_name"] == "DELEGATE" for op in it._get_ops_details())
    return it.invoke, ("LiteRT + XNNPACK" if delegated else
                       "LiteRT builtin kernels (no delegate applied)")


def measure(runs: int, threads: int, save: Path | None = None) -> list[dict]:
    models = exports()
    if save:  # e.g. for instruction counts under qemu (python -m pipeline.bench)
        save.mkdir(parents=True, exist_ok=True)
        for name, model in models.items():
            (save / f"{MODEL}_{name}.tflite").write_bytes(model)
    plan = [("binary", "bitlite"), ("int8", "tflite"), ("float", "tflite"), ("binary", "lce")]
    callables = []
    for name, engine in plan:
        fn, desc = timer(name, models[name], engine, threads)
        for _ in range(3):
            fn()  # warm up: first invokes pack weights and fault pages in
        callables.append((name, desc, fn, []))
    for _ in range(runs):  # interleaved, so every engine sees the same load
        for _, _, fn, times in callables:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return [dict(model=name, engine=desc, ms=1000 * float(np.median(times)),
                 size_kb=len(models[name]) / 1024) for name, desc, _, times in callables]


def markdown(rows: list[dict], threads: int) -> str:
    ours = rows[0]["ms"]
    lines = [
        f"{MODEL} on {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} (untrained), batch 1, {threads} thread(s); "
        "median latency. Shared, contended CPU: absolute times are noisy, ratios come "
        "from one interleaved run.", "",
        "| model | engine | size (KiB) | latency (ms) | bitlite binary is faster by |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['engine']} | {r['size_kb']:.0f} | {r['ms']:.3f} | "
                     f"{r['ms'] / ours:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--save", type=Path, default=None, help="write the three exports here")
    args = parser.parse_args()
    rows = measure(args.runs, args.threads, args.save)
    title, body = f"bitlite runtime on x86-64 ({cpu_name()})", markdown(rows, args.threads)
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

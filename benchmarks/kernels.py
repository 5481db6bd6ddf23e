"""bitlite's binary kernels against int8 and float on XNNPACK and LCE, from one run.

    python -m benchmarks.kernels [--runs 30] [--models vgg8,lenet5] [--exports DIR]
        [--aarch64 | --aarch64-only] [--out benchmarks/results/kernels.md]

For each network (the registered VGG-8, 32x32x3 128-128-256-256-512-512, and the default
LeNet-5 BNN, both built here and converted untrained: speed does not depend on weight
values): the binary export on bitlite's runtime with each kernel forced by
``BITLITE_KERNEL`` (avx512, avx2, generic, reference; a kernel this CPU lacks is skipped
and named; the export's float ops on the host's XNNPACK, as users run it, and on its
builtin kernels, see NOTE), the int8 and float exports on LiteRT's interpreter
(``ai_edge_litert``, whose default XNNPACK delegate runs int8 too: tflite-runtime 2.14's
Python interpreter applies no XNNPACK to int8 graphs, so it is not used for int8), the
int8 export on TensorFlow's ``tf.lite.Interpreter`` too (another XNNPACK build: on a
Xeon with AMX, LiteRT's runs int8 GEMMs on the AMX tile unit and TensorFlow 2.16's on
AVX-512 VNNI; each table says which ran, probed by :mod:`benchmarks.xnnpack_kernels`), and
the binary export on LCE's own interpreter (on x86 that is LCE's portable reference
code, not a device speed), at 1 and 2 threads. Every subject runs in every round, round
after round, so they all share the machine's load: one cold invoke (the others' weights,
tens of MB for the float exports, have just pushed its own out of cache) and then
``--block`` warm ones back to back, as an inference loop runs. The warm figures and the
ratios (medians of per-round ratios) are what a user's loop sees; the cold column says
how much of that a single invoke after other work loses. The cores are shared, so
compare ratios within the table.

Each bitlite kernel's output is compared with the reference kernel's on the same float
kernels (bit-exact). Then VGG-8's binary convolutions alone (the C++ layer bench), and
with ``--aarch64`` guest instruction counts under qemu-aarch64 (whole nets, the
convolutions alone, inner loops). Last, this core's arithmetic ceilings
(``runtime/check/peak_bench.cc``: MAC/s of the register-resident instruction sequences
binary, int8 and float kernels are made of) beside what each kernel reaches: how near
the machine's limit each one runs, and the most a binary kernel can gain over int8 on
equal MACs when both run at their ceiling.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This checkout's runtime (its kernels are what is measured), not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402, F401  (Keras 2 before TensorFlow)
from benchmarks.table import cpu_name, write_table  # noqa: E402

KERNELS = ("avx512", "avx2", "generic", "reference")
THREADS = (1, 2)
SLOW_MS = 50.0  # subjects slower than this get at most SLOW_RUNS samples
SLOW_RUNS = 5
# The layers runtime/check/bconv_bench.cc runs per net, and their binary MACs.
BENCH_LAYERS = {
    "vgg8": [("32x32 128->128", 32 * 32 * 128 * 1152), ("16x16 128->256", 16 * 16 * 256 * 1152),
             ("16x16 256->256", 16 * 16 * 256 * 2304), ("8x8 256->512", 8 * 8 * 512 * 2304),
             ("8x8 512->512", 8 * 8 * 512 * 4608), ("dense 8192->1024", 1024 * 8192),
             ("dense 1024->10", 10 * 1024)],
    "lenet5": [("12x12 32->64 5x5", 8 * 8 * 64 * 800), ("dense 1024->512", 512 * 1024),
               ("dense 512->10", 10 * 512)],
}
PEAK_SEQUENCES = {  # runtime/check/peak_bench.cc's names
    "binary_avx512": "VPXORQ + VPOPCNTQ + VPADDQ: 512 binary MACs",
    "binary_avx2": "2 VPXOR + 2 VPSHUFB + 2 VPADDB: 256 binary MACs (bitlite's AVX2 step)",
    "int8_vnni512": "VPDPBUSD zmm: 64 int8 MACs",
    "int8_avx2": "VPMADDUBSW + VPMADDWD + VPADDD: 32 int8 MACs (no VNNI)",
    "int8_amx": "TDPBUSD on AMX tiles: 16,384 int8 MACs",
    "float_avx512": "VFMADD231PS zmm: 16 float MACs",
    "float_avx2": "VFMADD231PS ymm: 8 float MACs",
}
BUILTIN = ", float ops on the host's builtin kernels"
NOTE = (
    "The bitlite rows run the binary export's float ops (the first convolution, the "
    "classifier head) on the host runtime's default XNNPACK delegate, as "
    "bitlite_runtime.Interpreter applies it by default (bitlite's delegate first, then "
    "XNNPACK at the interpreter's thread count; one thread: no threadpool); the rows "
    f"marked \"{BUILTIN.lstrip(', ')}\" run them on the host's builtin kernels "
    "(xnnpack=False). Each bitlite row's output is compared with the reference kernel's "
    "on the same float kernels. 2-thread figures need a quiet machine: on a loaded "
    "2-core one, an invoke whose pool worker is descheduled waits a scheduler time "
    "slice (every engine's 2-thread LeNet-5 invoke then swings from 0.2 ms to tens of ms).")


class Subject:
    """One engine on one export at one thread count: a callable invoke and its samples.

    Per round: ``cold``, the round's first invoke (right after the other subjects ran:
    caches hold their weights, not this one's), then ``rounds[r]``, the times of
    ``block`` more invokes back to back (warm, as an inference loop runs)."""

    def __init__(self, label: str, kind: str, threads: int, invoke, output) -> None:
        self.label, self.kind, self.threads = label, kind, threads
        self.invoke, self.output = invoke, output
        self.cold: list[float] = []
        self.rounds: dict[int, float] = {}  # round -> median of its warm invokes
        self.cap = 0

    @property
    def times(self) -> list[float]:
        return list(self.rounds.values())

    def median_ms(self) -> float:
        return 1000 * float(np.median(self.times))

    def cold_ms(self) -> float:
        return 1000 * float(np.median(self.cold))


def ratio(base: Subject, other: Subject) -> float:
    """Median over the rounds both ran of base's time / other's in that round: each
    ratio compares invokes that met the same load."""
    common = sorted(set(base.rounds) & set(other.rounds))
    return float(np.median([base.rounds[r] / other.rounds[r] for r in common]))


def bitlite_subject(model: bytes, kernel: str, threads: int, x: np.ndarray,
                    xnnpack: bool = True) -> Subject:
    from bitlite_runtime import Interpreter

    os.environ["BITLITE_KERNEL"] = kernel  # read at prepare
    try:
        it = Interpreter(model, num_threads=threads, xnnpack=xnnpack)
    finally:
        os.environ.pop("BITLITE_KERNEL", None)
    result: dict = {}

    def invoke() -> None:
        result["y"] = it.invoke(x)

    def output() -> np.ndarray:
        y = result["y"]
        y = next(iter(y.values())) if isinstance(y, dict) else y
        return np.asarray(y[0] if isinstance(y, (list, tuple)) else y)

    label = f"bitlite {kernel}" + ("" if xnnpack else BUILTIN)
    return Subject(label, "binary", threads, invoke, output)


# Host interpreters an int8 or float export runs on: LiteRT (the default host) and
# TensorFlow's tf.lite, whose XNNPACK builds differ (LiteRT's has AMX int8 kernels).
ENGINES = ("litert", "tf")


def _host_interpreter(engine: str):
    if engine == "tf":
        import tensorflow as tf

        return tf.lite.Interpreter, f"TF {tf.__version__} tf.lite"
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter, "LiteRT"


def host_subject(model: bytes, kind: str, threads: int, x: np.ndarray,
                   engine: str = "litert") -> Subject:
    """``kind`` on the host interpreter ``engine`` (ENGINES); its Subject's kind is
    ``kind`` for LiteRT and ``kind-tf`` for TensorFlow's."""
    interpreter, name = _host_interpreter(engine)
    it = interpreter(model_content=model, num_threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    if detail["dtype"] == np.int8:
        scale, zero = detail["quantization"]
        xq = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    else:
        xq = x.astype(detail["dtype"])
    delegated = any(op["op_name"] == "DELEGATE" for op in it._get_ops_details())
    out = it.get_output_details()[0]["index"]
    result: dict = {}

    def invoke() -> None:  # what bitlite's rows time too: set input, invoke, read output
        it.set_tensor(detail["index"], xq)
        it.invoke()
        result["y"] = it.get_tensor(out)

    label = f"{name} + XNNPACK" if delegated else f"{name} builtin kernels (no XNNPACK)"
    tag = kind if engine == "litert" else f"{kind}-{engine}"
    return Subject(f"{kind} {label}", tag, threads, invoke, lambda: result["y"])


def lce_subject(model: bytes, threads: int, x: np.ndarray) -> Subject:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    it = Interpreter(model, num_threads=threads)
    result: dict = {}

    def invoke() -> None:
        result["y"] = it.predict(x)

    return Subject("binary LCE interpreter (x86 reference kernels, not device speed)",
                   "binary", threads, invoke, lambda: np.asarray(result["y"]))


def host_name() -> str:
    """The TFLite runtime bitlite_runtime.Interpreter runs in here."""
    from bitlite_runtime import hosts

    return {"litert": "LiteRT (ai-edge-litert)", "tflite_runtime": "tflite-runtime 2.14",
            "tensorflow": "TensorFlow's tf.lite"}.get(hosts.resolve().name, hosts.resolve().name)


def available_kernels() -> tuple[list[str], list[str]]:
    """The kernels this CPU runs, and those it lacks (the library reads the variable)."""
    from bitlite_runtime import kernel_name

    have, skipped = [], []
    for k in KERNELS:
        os.environ["BITLITE_KERNEL"] = k
        try:
            (have if kernel_name() == k else skipped).append(k)
        finally:
            os.environ.pop("BITLITE_KERNEL", None)
    return have, skipped


def build_subjects(name: str, exports: dict[str, Path], kernels: list[str]) -> list[Subject]:
    models = {kind: path.read_bytes() for kind, path in exports.items()}
    shape = (1, 28, 28, 1) if name == "lenet5" else (1, 32, 32, 3)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    subjects = []
    for threads in THREADS:
        # The reference kernel (the oracle, serial) only at 1 thread; the float ops on
        # the host's XNNPACK (the default), then on its builtin kernels (see NOTE).
        for xnnpack in (True, False):
            subjects += [bitlite_subject(models["binary"], k, threads, x, xnnpack)
                         for k in kernels if threads == 1 or k != "reference"]
        subjects += [host_subject(models["int8"], "int8", threads, x, e) for e in ENGINES]
        subjects.append(host_subject(models["float"], "float", threads, x))
        subjects.append(lce_subject(models["binary"], threads, x))
    return subjects


def run(subjects: list[Subject], runs: int, clock=time.perf_counter, block: int = 3) -> None:
    """Interleaved rounds; ``clock``: wall time, or e.g. ``time.process_time`` (CPU time
    of this process: at 1 thread, insensitive to other processes' load). In each round
    every subject runs one cold invoke and then ``block`` warm ones (one for subjects
    slower than SLOW_MS)."""
    for s in subjects:  # warm up (first invokes pack weights, fault pages in) and size
        for _ in range(3):
            t = time.perf_counter()
            s.invoke()
            elapsed = 1000 * (time.perf_counter() - t)
        s.cap = SLOW_RUNS if elapsed > SLOW_MS else runs
    for r in range(runs):  # interleaved: one block of each subject per round
        # Each round starts one subject later: whoever runs right after the previous
        # round's last subject (LCE at 2 threads, its workers still spinning) changes,
        # so no row carries that cost every round.
        k = r % len(subjects)
        for s in subjects[k:] + subjects[:k]:
            if r >= s.cap:
                continue
            warm = []
            for i in range(1 + (block if s.cap == runs else 1)):
                t = clock()
                s.invoke()
                (warm if i else s.cold).append(clock() - t)
            s.rounds[r] = float(np.median(warm))


def parity(subjects: list[Subject]) -> dict[int, str]:
    """Each bitlite kernel's output (any thread count) vs the reference kernel's."""
    out = {}
    for s in subjects:
        if not s.label.startswith("bitlite "):
            continue
        # The reference on the same float kernels (XNNPACK's round differently).
        want = "bitlite reference" + (BUILTIN if s.label.endswith(BUILTIN) else "")
        ref = next((r for r in subjects if r.label == want), None)
        if ref is None:
            out[id(s)] = "no reference"
        else:
            same = np.array_equal(s.output(), ref.output())
            out[id(s)] = "bit-exact" if same else "DIFFERS"
    return out


def layer_bench(runs: int, kernels: list[str], net: str) -> tuple[str, dict[str, float]]:
    """The C++ layer bench (runtime/check/bconv_bench.cc): the net's binary convolutions
    alone through RunBConv, every kernel at 1 and 2 threads, interleaved. Returns its
    table and the total microseconds per "kernel/threads"."""
    from bitlite_runtime import build

    root = Path(__file__).resolve().parents[1] / "runtime"
    with tempfile.TemporaryDirectory(prefix="bitlite-bconv-bench-") as tmp:
        exe = Path(tmp) / "bconv_bench"
        flags = [f for f in build.compile_flags("host")
                 if f not in ("-shared", "-fPIC", "-fvisibility=hidden")]
        srcs = [str(p) for p in build.sources() if p.name != "lce_ops.cc"]
        subprocess.run([build.compiler_for("host"), *flags, str(root / "check" / "bconv_bench.cc"),
                        *srcs, "-o", str(exe)], check=True, capture_output=True)
        names = [k for k in kernels if k != "reference"]
        out = subprocess.run([str(exe), str(runs), ",".join(names), "2", net], check=True,
                             capture_output=True, text=True).stdout
    header = out.splitlines()[0].split()[3:]  # "layer (median us)" then kernel/threads
    total = next(line for line in out.splitlines() if line.startswith("total")).split()[1:]
    totals = dict(zip(header, map(float, total), strict=True))
    text = (f"{net}'s binary convolutions alone (C++ `runtime/check/bconv_bench.cc`, no "
            "TFLite; pad_values=1 as the converter writes them), each kernel at 1 and 2 "
            f"threads, interleaved round by round, median of {runs}:\n\n"
            "```\n" + out + "```\n")
    return text, totals


def peak_bench(runs: int = 15) -> dict[str, float]:
    """This core's ceilings, G MAC/s per instruction sequence (runtime/check/peak_bench.cc);
    sequences the CPU lacks are left out."""
    from bitlite_runtime import build

    source = Path(__file__).resolve().parents[1] / "runtime" / "check" / "peak_bench.cc"
    with tempfile.TemporaryDirectory(prefix="bitlite-peak-bench-") as tmp:
        exe = Path(tmp) / "peak_bench"
        subprocess.run([build.compiler_for("host"), "-O2", "-std=c++17", str(source), "-o",
                        str(exe)], check=True, capture_output=True)
        out = subprocess.run([str(exe), str(runs)], check=True, capture_output=True,
                             text=True).stdout
    fields = (line.split() for line in out.splitlines())
    return {name: float(value) for name, value in fields if value != "unsupported"}


def ceilings_section(peaks: dict[str, float], reached: list[tuple[str, float, str]]) -> str:
    """The ceilings, then each (what, G MAC/s, its ceiling's name; "int8": the best int8
    sequence the CPU has) as a share of it, then the bound they put on binary over int8."""
    int8 = "int8_vnni512" if "int8_vnni512" in peaks else "int8_avx2"
    reached = [(what, gmacs, int8 if peak == "int8" else peak) for what, gmacs, peak in reached]
    lines = ["### This core's ceilings", "",
             "`runtime/check/peak_bench.cc`: MAC/s of each instruction sequence with its "
             "operands in registers (no loads or stores; only the ALU ports bound it), median "
             "of 15 interleaved rounds, 1 thread.", "",
             "| sequence | MACs per instruction sequence | G MAC/s |", "|---|---|---:|"]
    lines += [f"| {name} | {PEAK_SEQUENCES[name]} | {peaks[name]:.0f} |"
              for name in PEAK_SEQUENCES if name in peaks]
    lines += ["", "| 1 thread | G MAC/s | ceiling | share of the ceiling |", "|---|---:|---|---:|"]
    lines += [f"| {what} | {gmacs:.0f} | {peak} | {gmacs / peaks[peak]:.0%} |"
              for what, gmacs, peak in reached if peak in peaks]
    int8s = [name for name in ("int8_amx", "int8_vnni512", "int8_avx2") if name in peaks]
    bounds = [f"{b} / {i} = **{peaks[b] / peaks[i]:.2f}×**" for i in int8s[:2]
              for b in ("binary_avx512", "binary_avx2") if b in peaks]
    if bounds:
        lines += ["", "On equal MACs, with both kernels at their ceiling, binary can be at "
                  "most " + "; ".join(bounds) + " as fast as int8 on this core. Which int8 "
                  "unit a table's int8 row ran on is probed above each table: a "
                  "binary/int8 ratio above these bounds means int8 ran far below its "
                  "ceiling (memory, im2col, requantization), not that binary beat the "
                  "unit."]
    return "\n".join(lines) + "\n"


def reached_rows(name: str, exports: dict[str, Path], subjects: list[Subject],
                 totals: dict[str, float], units: dict[str, str]
                 ) -> list[tuple[str, float, str]]:  # fmt: skip
    """G MAC/s each 1-thread kernel reaches on ``name``: bitlite's binary convolutions
    alone (layer bench) and the int8 export's whole warm invoke on each host's XNNPACK,
    against the ceiling of the unit its GEMMs ran on (``units``)."""
    from pipeline.tflite.reader import read_model

    rows = []
    binary_macs = sum(macs for _, macs in BENCH_LAYERS.get(name, []))
    for kernel in ("avx512", "avx2"):
        us = totals.get(f"{kernel}/1")
        if us and binary_macs:
            rows.append((f"{name}: bitlite {kernel}, binary convolutions alone",
                         binary_macs / us / 1e3, f"binary_{kernel}"))
    macs = sum(read_model(exports["int8"].read_bytes()).macs().values())
    for engine in ENGINES:
        kind = "int8" if engine == "litert" else f"int8-{engine}"
        int8 = next((s for s in subjects if s.kind == kind and s.threads == 1), None)
        if int8 is None:
            continue
        unit = units.get(engine, "")
        peak = "int8_amx" if "AMX" in unit else "int8_vnni512" if "VNNI" in unit else "int8"
        rows.append((f"{name}: {int8.label}, whole invoke (all its MACs)",
                     macs / int8.median_ms() / 1e6, peak))
    return rows


def aarch64_section(exports_by_model: dict[str, dict[str, Path]]) -> str:
    """Guest instructions on emulated AArch64 (qemu-user + the icount plugin): whole
    nets (binary on bitlite's NEON kernels, float on tflite-runtime + XNNPACK), VGG-8's
    binary convolutions alone, and the static inner loops."""
    from bitlite_runtime import build

    from benchmarks.runtime_neon_loop import TILES, inner_loop
    from pipeline.bench.targets import icount, make_target
    from pipeline.bench.targets.base import Settings
    from pipeline.bench.targets.measure import measure
    from tools.inspect import inspect

    qemu = make_target("qemu-aarch64", progress=lambda m: print(m, file=sys.stderr))
    lines = ["### AArch64 (qemu-aarch64, guest instructions per inference)", "",
             "Exact and repeatable counts, not times: guest instructions between set-input "
             "and read-output (the icount plugin), tflite-runtime 2.14 aarch64 wheel, "
             "bitlite's library cross-built with this checkout's kernels.", "",
             "| net | binary MACs | binary instructions | per binary MAC | float "
             "instructions | binary / float | parity |", "|---|---:|---:|---:|---:|---:|---|"]
    whole: dict[str, tuple[float, int]] = {}  # net -> (binary instructions, binary MACs)
    for name, exports in exports_by_model.items():
        macs = inspect(exports["binary"].read_bytes())["macs"].get("binary", 0)
        counts, ok = {}, []
        for kind in ("binary", "float"):
            print(f"{name} {kind}: qemu-aarch64", file=sys.stderr)
            m = measure(exports[kind], qemu, Settings(runs=2, warmup=1))
            counts[kind] = m.instructions_per_invoke
            ok.append(f"{kind} {'ok' if m.parity and m.parity.get('ok') else 'FAIL'}")
        whole[name] = (counts["binary"], macs)
        lines.append(f"| {name} | {macs:,} | {counts['binary']:,.0f} | "
                     f"{counts['binary'] / macs:.4f} | {counts['float']:,.0f} | "
                     f"{counts['binary'] / counts['float']:.3f} | {', '.join(ok)} |")
    # Each net's binary convolutions alone: one round of the C++ layer bench.
    root = Path(__file__).resolve().parents[1] / "runtime"
    with tempfile.TemporaryDirectory(prefix="bitlite-a64-bench-") as tmp:
        exe = Path(tmp) / "bconv_bench"
        flags = [f for f in build.compile_flags("aarch64")
                 if f not in ("-shared", "-fPIC", "-fvisibility=hidden")]
        srcs = [str(p) for p in build.sources() if p.name != "lce_ops.cc"]
        subprocess.run([build.compiler_for("aarch64"), *flags, "-static",
                        str(root / "check" / "bconv_bench.cc"), *srcs, "-o", str(exe)],
                       check=True, capture_output=True)
        plugin = icount.build_plugin()
        lines += ["", "Binary convolutions alone (`runtime/check/bconv_bench.cc` at 1 thread, "
                  "the layers as the rewritten exports hold them, one at a time; 2 rounds "
                  "minus 1 round):", "", "| net | layer | instructions | binary MACs | "
                  "per binary MAC |", "|---|---|---:|---:|---:|"]
        layers_total: dict[str, int] = {}
        for name in exports_by_model:
            net_total = 0
            for index, (layer, macs) in enumerate(BENCH_LAYERS[name]):
                count = {}
                for rounds in (1, 2):
                    out = Path(tmp) / f"count-{name}-{index}-{rounds}.txt"
                    subprocess.run(["qemu-aarch64", "-plugin", f"{plugin},out={out}", str(exe),
                                    str(rounds), "neon", "1", name, str(index)],
                                   check=True, capture_output=True)  # fmt: skip
                    count[rounds] = int(out.read_text().split()[1])  # "total N"
                n = count[2] - count[1]
                net_total += n
                lines.append(f"| {name} | {layer} | {n:,} | {macs:,} | {n / macs:.4f} |")
            macs = sum(m for _, m in BENCH_LAYERS[name])
            lines.append(f"| {name} | all | {net_total:,} | {macs:,} | {net_total / macs:.4f} |")
            layers_total[name] = net_total
        for name, (count, macs) in whole.items():
            rest = count - layers_total[name]
            lines.append(f"\n{name}: outside these layers (the float first convolution, "
                         "LceQuantize, layers the bench leaves out, pooling, TFLite and the "
                         f"Python invoke) {rest:,.0f} instructions, {rest / macs:.4f} per binary "
                         "MAC of the whole net.")
    lines += ["",
              "| inner loop | source | tile (pixels x filters x steps) | instructions | "
              "binary MACs | per binary MAC |", "|---|---|---|---:|---:|---:|"]
    for arch, p, o, steps, source in TILES:
        if arch != "aarch64":
            continue
        body = inner_loop(arch, source, p * o * steps)
        lines.append(f"| {arch} | {source} | {p} x {o} x {steps} | {len(body)} | "
                     f"{p * o * steps * 128} | {len(body) / (p * o * steps * 128):.4f} |")
    return "\n".join(lines) + "\n"


def int8_units(exports: dict[str, Path]) -> dict[str, str]:
    """engine -> the unit XNNPACK's int8 GEMMs ran on for this export (one probed invoke
    at 1 thread, :mod:`benchmarks.xnnpack_kernels`), or why that is not known."""
    from benchmarks.xnnpack_kernels import describe

    return {engine: describe(exports["int8"], engine) for engine in ENGINES}


def units_line(units: dict[str, str]) -> str:
    names = {"litert": "LiteRT", "tf": "TensorFlow's tf.lite"}
    return ("Which XNNPACK int8 GEMM micro-kernels ran (`python -m benchmarks.xnnpack_kernels "
            "FILE --engine litert|tf`: the int8 file under gdb, one-shot breakpoints on "
            "XNNPACK's micro-kernels): " + "; ".join(f"{names[e]}: {u}" for e, u in units.items())
            + ".")


def markdown(name: str, subjects: list[Subject], layers: str,
             totals: dict[str, float], units: dict[str, str]) -> str:
    checks = parity(subjects)
    int8 = {s.threads: s for s in subjects if s.kind == "int8"}
    int8_tf = {s.threads: s for s in subjects if s.kind == "int8-tf"}
    one = {s.label: s for s in subjects if s.threads == 1}
    lines = [f"### {name}", "", units_line(units), "",
             "| engine | threads | median ms (warm) | cold ms | rounds | "
             "int8 LiteRT-XNNPACK / this (warm) | int8 TF-XNNPACK / this (warm) | "
             "1 thread / this (warm) | output vs bitlite reference |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in subjects:
        speedup = (f"{ratio(one[s.label], s):.2f}x" if s.threads > 1 and s.label in one
                   else "—")
        tf_ratio = f"{ratio(int8_tf[s.threads], s):.2f}x" if s.threads in int8_tf else "—"
        lines.append(f"| {s.label} | {s.threads} | {s.median_ms():.3f} | {s.cold_ms():.3f} | "
                     f"{len(s.rounds)} | {ratio(int8[s.threads], s):.2f}x | {tf_ratio} | "
                     f"{speedup} | {checks.get(id(s), '—')} |")
    lines += ["", layers]
    whole = next((s for s in subjects if s.threads == 1 and s.label.startswith("bitlite")), None)
    kernel = next(iter(totals), None)
    if whole is not None and kernel is not None and kernel.endswith("/1"):
        conv_ms = totals[kernel] / 1000
        lines.append(f"Outside the binary convolutions: {whole.label} at 1 thread takes "
                     f"{whole.median_ms():.3f} ms per invoke, its binary convolutions alone "
                     f"{conv_ms:.3f} ms ({kernel}): {whole.median_ms() - conv_ms:.3f} ms "
                     f"({1 - conv_ms / whole.median_ms():.0%}) is the rest (Python invoke, "
                     "TFLite, the float layers on XNNPACK, pooling, LceQuantize; op by op: "
                     f"`python -m benchmarks.op_profile --model {name}`).\n")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--models", default="vgg8,lenet5")
    parser.add_argument("--block", type=int, default=3,
                        help="warm invokes per subject per round, after its cold one")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--aarch64", action="store_true",
                        help="also count guest instructions under qemu-aarch64 (minutes)")
    parser.add_argument("--aarch64-only", action="store_true",
                        help="only the qemu-aarch64 instruction counts (no host timing)")
    parser.add_argument("--exports", type=Path, default=None,
                        help="use NAME_{binary,int8,float}.tflite from this folder instead "
                             "of building them")
    args = parser.parse_args()
    if args.runs < 1 or args.block < 1:
        print("--runs and --block must be >= 1", file=sys.stderr)
        sys.exit(2)
    from benchmarks.latency import build_exports

    kernels, skipped = available_kernels()
    sections, all_exports, reached = [], {}, []
    with tempfile.TemporaryDirectory(prefix="bitlite-kernels-") as tmp:
        for name in args.models.split(","):
            if args.exports:
                exports = {k: args.exports / f"{name}_{k}.tflite"
                           for k in ("binary", "int8", "float")}
            else:
                print(f"{name}: building exports", file=sys.stderr)
                exports = build_exports(name, Path(tmp))
            all_exports[name] = exports
            if args.aarch64_only:
                continue
            subjects = build_subjects(name, exports, kernels)
            print(f"{name}: timing {len(subjects)} subjects, {args.runs} rounds",
                  file=sys.stderr)
            run(subjects, args.runs, block=args.block)
            print(f"{name}: layer bench", file=sys.stderr)
            layers, totals = layer_bench(max(args.runs, 30), kernels, name)
            print(f"{name}: probing XNNPACK's int8 kernels", file=sys.stderr)
            units = int8_units(exports)
            sections.append(markdown(name, subjects, layers, totals, units))
            reached += reached_rows(name, exports, subjects, totals, units)
        if not args.aarch64_only:
            print("ceilings: peak bench", file=sys.stderr)
            sections.append(ceilings_section(peak_bench(), reached))
        if args.aarch64 or args.aarch64_only:
            sections.append(aarch64_section(all_exports))
    if args.aarch64_only:
        body = ("Untrained weights, batch 1, the exports built as for the timing table "
                "(binary: LCE, then pipeline.tflite.chains).\n\n" + "\n".join(sections))
        print(write_table(args.out, "Binary kernels on AArch64: guest instructions", body)
              if args.out else body)
        return
    note = (f"Kernels skipped (this CPU lacks them): {', '.join(skipped)}.\n\n"
            if skipped else "")
    body = (
        f"{cpu_name()}. Batch 1, random input, untrained weights. Interleaved rounds "
        f"({args.runs}; subjects slower than {SLOW_MS:.0f} ms get {SLOW_RUNS}): in each "
        f"round every subject runs one cold invoke (right after the other subjects, whose "
        f"weights, tens of MB for the float exports, have pushed its own out of cache) "
        f"then "
        f"{args.block} warm ones back to back, as an inference loop runs (slow subjects "
        f"1). Warm ms: the median over rounds of each round's warm median; cold ms: the "
        f"median cold invoke. Ratios: the median over rounds of the ratio within a round "
        f"(both sides met the same load); > 1 means faster than int8 on XNNPACK at the "
        f"same thread count. bitlite runs through bitlite_runtime.Interpreter (its delegate in "
        f"{host_name()}, as users run it; the kernel forced with BITLITE_KERNEL). "
        + NOTE + "\n\n"
        + note + "\n".join(sections))
    print(write_table(args.out, "Binary kernels vs int8 and float on XNNPACK", body)
          if args.out else body)


if __name__ == "__main__":
    main()

"""Which XNNPACK GEMM micro-kernels run a .tflite file on this machine, and so on which
unit: AMX tiles, AVX-512 VNNI, AVX2, NEON...

    python -m benchmarks.xnnpack_kernels FILE [--engine litert|tf] [--threads 1]

Why: "int8 on XNNPACK" is not one speed. XNNPACK picks its int8 GEMM micro-kernels by
the CPU's features and by what its build contains: LiteRT's (``ai-edge-litert``) carries
``*_avx512amx`` kernels, which on a Sapphire Rapids or later Xeon run int8 on the AMX
tile unit (a matrix engine: a bitwise XOR + popcount kernel has no such unit), while
TensorFlow 2.16's ``tf.lite.Interpreter`` bundles an older XNNPACK whose best int8 GEMMs
use AVX-512 VNNI. A binary-vs-int8 ratio means little unless the table says which ran.

How: the file runs under ``gdb`` (batch mode). The child builds the interpreter and
invokes once (XNNPACK's library is loaded, its weights packed, its kernels chosen), then
stops itself with SIGUSR1; gdb then sets a one-shot breakpoint at every
``xnn_*gemm*_ukernel_*`` symbol of the loaded libraries (the host library's own symbol
table names them), lets the child invoke again, and prints each micro-kernel that ran.
Needs ``gdb`` on PATH.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import os, signal, sys
import numpy as np
engine, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if engine == "tf":
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    it = tf.lite.Interpreter(model_path=path, num_threads=threads)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
it.invoke()  # XNNPACK packs weights and picks kernels on the first invoke
os.kill(os.getpid(), signal.SIGUSR1)  # gdb sets its breakpoints here
it.invoke()
print("BITLITE-PROBE-DONE", flush=True)
"""

GDB_SCRIPT = r"""
import gdb, re
hits = []
class Once(gdb.Breakpoint):
    def __init__(self, addr, name):
        super().__init__("*" + hex(addr), internal=True)
        self.name = name
    def stop(self):
        hits.append(self.name)
        self.enabled = False
        return False
def on_stop(event):
    if not isinstance(event, gdb.SignalEvent) or event.stop_signal != "SIGUSR1":
        return
    text = gdb.execute("info functions ^xnn_.*gemm.*_ukernel_", to_string=True)
    for line in text.splitlines():
        m = re.match(r"\s*0x([0-9a-f]+)\s+(xnn_\S+)", line)
        if m:
            Once(int(m.group(1), 16), m.group(2))
gdb.events.stop.connect(on_stop)
gdb.execute("set pagination off")
gdb.execute("handle SIGUSR1 stop print nopass")
gdb.execute("run")
gdb.execute("continue")
for name in dict.fromkeys(hits):
    print("BITLITE-PROBE-HIT", name)
"""

# Instruction-set suffixes of XNNPACK's micro-kernel names, most specific first.
UNITS = [
    ("avx512amx", "AMX tiles"),
    ("avx512vnni", "AVX-512 VNNI"),
    ("avxvnni", "AVX-VNNI (256-bit)"),
    ("avx512skx", "AVX-512 (no VNNI)"),
    ("avx512", "AVX-512"),
    ("avx2", "AVX2"),
    ("fma3", "AVX2/FMA3"),
    ("avx", "AVX"),
    ("sse", "SSE"),
    ("neondot", "NEON dot product"),
    ("neoni8mm", "NEON i8mm"),
    ("neon", "NEON"),
    ("scalar", "scalar C"),
]


def unit(kernel: str) -> str:
    """The unit a micro-kernel runs on, from its name's ISA suffix."""
    suffix = re.split(r"__|\.", kernel)[-1]
    return next((label for tag, label in UNITS if suffix.startswith(tag)), suffix)


def probe(path: Path, engine: str = "litert", threads: int = 1) -> list[str]:
    """The XNNPACK GEMM micro-kernels (names) that ran during one invoke of ``path``."""
    gdb = shutil.which("gdb")
    if gdb is None:
        raise RuntimeError("gdb is not installed (apt-get install gdb)")
    with tempfile.TemporaryDirectory(prefix="bitlite-xnnpack-probe-") as tmp:
        child, script = Path(tmp) / "child.py", Path(tmp) / "probe.py"
        child.write_text(CHILD)
        script.write_text(GDB_SCRIPT)
        argv = [gdb, "-q", "-batch", "-x", str(script), "--args",
                str(Path(sys.executable).resolve()), str(child), engine, str(path.resolve()),
                str(threads)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    out = done.stdout
    if "BITLITE-PROBE-DONE" not in out:
        raise RuntimeError(f"the probe did not finish: {_child_error(done.stderr)[:200]}")
    return [line.split(" ", 1)[1] for line in out.splitlines()
            if line.startswith("BITLITE-PROBE-HIT ")]  # fmt: skip


def _child_error(stderr: str) -> str:
    """The child's own exception line (gdb's stop message comes after it), else the last."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines
              if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line) and not line.startswith("gdb.")]
    return (errors or lines or ["?"])[-1]


def units(kernels: list[str]) -> list[str]:
    """The distinct units of ``kernels``, in order of first use."""
    return list(dict.fromkeys(unit(k) for k in kernels))


def describe(path: Path, engine: str = "litert", threads: int = 1) -> str:
    """One phrase for a table: which units XNNPACK's GEMMs used, or why it is not known."""
    try:
        found = probe(path, engine, threads)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        return f"XNNPACK kernels not probed ({err})"
    if not found:
        return "no XNNPACK GEMM micro-kernel ran"
    return "XNNPACK GEMMs on " + " + ".join(units(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("file", type=Path)
    parser.add_argument("--engine", choices=("litert", "tf"), default="litert",
                        help="LiteRT's interpreter (ai-edge-litert) or TensorFlow's tf.lite")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from pipeline.tflite.reader import ModelFormatError, read_model

    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        sys.exit(2)
    try:
        read_model(args.file.read_bytes())
    except ModelFormatError as err:
        print(f"{args.file}: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        found = probe(args.file, args.engine, args.threads)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(str(err), file=sys.stderr)
        sys.exit(1)
    print(f"{args.file.name} on {args.engine}, {args.threads} thread(s): "
          f"{len(found)} XNNPACK GEMM micro-kernel(s) ran")
    for name in found:
        print(f"  {name}  ({unit(name)})")


if __name__ == "__main__":
    main()

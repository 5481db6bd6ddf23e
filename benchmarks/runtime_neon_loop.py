"""Instructions per binary MAC in the NEON binary-GEMM inner loop, read from the code
the AArch64 (and ARMv7) cross compiler actually emits with the library's own flags.

    python -m benchmarks.runtime_neon_loop [--out benchmarks/results/runtime_neon_loop.md]

The innermost loop processes S 128-bit steps of a P x O tile (P pixels, O filters):
S*P*O*128 binary multiply-accumulates (AArch64: BgemmNeonBlocked, unrolled twice; ARMv7:
BgemmNeon). Its length in instructions is exact
(static), whatever the CPU; what it costs in cycles needs a device.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.table import write_table

# This checkout's kernels, not an installed (possibly older) bitlite_runtime.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from bitlite_runtime import build  # noqa: E402

# arch, pixels, filters, K steps per loop iteration, source file: one popcount per
# pixel x filter x step identifies each loop (AArch64 also has a 1 x 8 loop for lone
# pixels, i.e. fully connected layers).
TILES = [("aarch64", 4, 4, 2, "bgemm_neon_4x4x16.cc"), ("aarch64", 1, 8, 1, "bgemm_neon_4x4x16.cc"),
         ("armhf", 2, 4, 1, "bgemm_neon.cc")]
OBJDUMP = {"aarch64": "aarch64-linux-gnu-objdump", "armhf": "arm-linux-gnueabihf-objdump"}
POPCOUNT = {"aarch64": "cnt", "armhf": "vcnt.8"}


def inner_loop(arch: str, source: str, popcounts: int) -> list[str]:
    """The mnemonics of the shortest backward-branch loop with exactly `popcounts` popcounts."""
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "neon.o"
        flags = [f for f in build.compile_flags(arch) if f != "-shared"]
        subprocess.run([build.compiler_for(arch), *flags, "-c",
                        str(build.source_dir() / source), "-o", str(obj)], check=True)
        dump = subprocess.run([OBJDUMP[arch], "-d", "--no-show-raw-insn", str(obj)],
                              check=True, capture_output=True, text=True).stdout
    code = [(int(m[1], 16), m[2]) for m in re.finditer(r"^\s+([0-9a-f]+):\s+(\S+)\s*(\S*)", dump,
                                                       re.M)]
    branches = [(addr, int(t.group(1), 16))
                for (addr, op), line in zip(code, re.finditer(r"^\s+[0-9a-f]+:\s+\S+\s*(.*)$",
                                                              dump, re.M), strict=True)
                if op.startswith("b") and (t := re.match(r"([0-9a-f]+)\s", line[1] + " "))
                and int(t.group(1), 16) < addr]
    loops = []
    for end, start in branches:
        body = [op for addr, op in code if start <= addr <= end]
        if body.count(POPCOUNT[arch]) == popcounts:
            loops.append(body)
    return min(loops, key=len)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = ["Static count over the compiled inner loop (S 128-bit steps of the tile); "
             "goal (issue 15): <= 0.025 instructions per binary MAC on AArch64.", "",
             "| arch | source | tile (pixels x filters x steps) | loop instructions | binary "
             "MACs per iteration | instructions / MAC | mix |",
             "|---|---|---|---:|---:|---:|---|"]
    for arch, p, o, steps, source in TILES:
        try:
            body = inner_loop(arch, source, p * o * steps)
        except (FileNotFoundError, subprocess.CalledProcessError, ValueError) as e:
            lines.append(f"| {arch} | {source} | - | - | - | - | not built: {e} |")
            continue
        macs = p * o * steps * 128
        mix = ", ".join(f"{k} {v}" for k, v in Counter(body).most_common())
        lines.append(f"| {arch} | {source} | {p} x {o} x {steps} | {len(body)} | {macs} | "
                     f"{len(body) / macs:.4f} | {mix} |")
    title, body = "NEON binary-GEMM inner loop: instructions per binary MAC", "\n".join(lines)
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

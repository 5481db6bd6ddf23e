"""Guest instructions per inference on emulated AArch64, in both Raspberry Pi OS sysroots.

    python -m benchmarks.runtime_aarch64_qemu --out benchmarks/results/runtime_aarch64_qemu.md
    python -m benchmarks.runtime_aarch64_qemu --models lenet5,vgg8

The float, int8 and binary exports of each network (built and converted here, untrained,
as benchmarks.latency builds them: instruction counts do not depend on weight values) run
under qemu-aarch64 with the icount plugin in two sysroots — ``qemu-aarch64`` (Debian 12,
Python 3.11, tflite-runtime 2.14: Raspberry Pi OS bookworm) and ``qemu-aarch64-trixie``
(Debian 13, Python 3.13, LiteRT 2.3 + numpy 2: Raspberry Pi OS trixie) — binary models on
bitlite's delegate cross-built for AArch64, every output checked against the host's.
Counts are exact and repeatable (the machine's load does not change them); ratios are
within one sysroot.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402, F401  (Keras 2 before TensorFlow)
from benchmarks.latency import KINDS, build_exports, parity_cell  # noqa: E402
from benchmarks.table import write_table  # noqa: E402
from pipeline.bench.targets import make_target, sysroot  # noqa: E402
from pipeline.bench.targets.base import Measurement, Settings  # noqa: E402
from pipeline.bench.targets.measure import measure  # noqa: E402

TARGETS = ("qemu-aarch64", "qemu-aarch64-trixie")
# The goals: a binary export costs at most 1/4 of float and 1/2 of int8.
GOALS = {"float": 0.25, "int8": 0.5}


def bench(exports: dict[str, Path], runs: int) -> dict[str, dict[str, Measurement]]:
    """{target: {kind: measurement}} for one network's exports."""
    results: dict[str, dict[str, Measurement]] = {}
    for spec in TARGETS:
        target = make_target(spec, progress=_log)
        results[spec] = {}
        for kind in KINDS:
            _log(f"  {exports[kind].name}: {spec}")
            results[spec][kind] = measure(exports[kind], target, Settings(runs=runs, warmup=1))
    return results


def sysroot_label(spec: str) -> str:
    recipe = sysroot.RECIPES[spec.removeprefix("qemu-")]
    cpu = f"`-cpu {recipe.qemu_cpu}`" if recipe.qemu_cpu else "qemu's default CPU (`max`)"
    return (f"`{spec}`: Debian {recipe.suite}, Python {recipe.python}, "
            f"{', '.join(recipe.install)}; emulated CPU: {cpu}")  # fmt: skip


def binary_macs(path: Path) -> int:
    from pipeline.tflite.reader import read_model

    return read_model(path.read_bytes()).macs()["binary"]


def markdown(results: dict[str, dict[str, dict[str, Measurement]]],
             exports: dict[str, dict[str, Path]]) -> str:  # fmt: skip
    any_m = next(iter(next(iter(next(iter(results.values())).values())).values()))
    lines = [
        "Guest instructions between set-input and read-output "
        f"({re.sub(r' -cpu [^)]+', '', any_m.cpu)}, icount plugin), "
        "batch 1, 1 thread, median of the timed inferences: exact and repeatable, not a time. "
        "Binary exports run on bitlite's delegate (cross-built with Debian 12's "
        "aarch64-linux-gnu-g++) inside the sysroot's own TFLite; float and int8 on that "
        "TFLite alone. Sysroots:",
        "",
        *[f"- {sysroot_label(spec)}" for spec in TARGETS],
        "",
        "| network | export | sysroot | runtime and kernels | instructions / inference "
        "| parity with the host |",
        "|---|---|---|---|---:|---|",
    ]
    for name, per_target in results.items():
        for kind in KINDS:
            for spec in TARGETS:
                m = per_target[spec][kind]
                lines.append(f"| {name} | {kind} | `{spec}` | {m.kernels} | "
                             f"{m.instructions_per_invoke:,} | {parity_cell(m)} |")  # fmt: skip
    lines += ["", "Binary against float and int8, within one sysroot (goals: binary <= 1/4 of "
              "float, <= 1/2 of int8):", "",
              "| network | sysroot | binary / float | binary / int8 | instructions per binary "
              "MAC (whole net) |", "|---|---|---:|---:|---:|"]  # fmt: skip
    for name, per_target in results.items():
        macs = binary_macs(exports[name]["binary"])
        for spec in TARGETS:
            rows = per_target[spec]
            binary = rows["binary"].instructions_per_invoke
            cells = [_goal(binary / rows[k].instructions_per_invoke, GOALS[k]) for k in GOALS]
            lines.append(f"| {name} | `{spec}` | {' | '.join(cells)} | "
                         f"{binary / max(1, macs):.3f} ({macs / 1e6:.0f} M binary MACs) |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _goal(ratio: float, goal: float) -> str:
    return f"{ratio:.3f} ({'met' if ratio <= goal else 'NOT met'})"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vgg8", help="nets, comma-separated (lenet5, vgg8)")
    p.add_argument("--runs", type=int, default=2, help="timed emulated inferences per export")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n]
    if not names or any(n not in ("lenet5", "vgg8") for n in names) or args.runs < 1:
        print("error: --models takes lenet5 and/or vgg8; --runs >= 1", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="bitlite-aarch64-") as tmp:
        exports = {}
        for name in names:
            _log(f"building {name}: float, int8 and binary exports")
            exports[name] = build_exports(name, Path(tmp))
        results = {name: bench(exports[name], args.runs) for name in names}
        body = markdown(results, exports)  # reads the exports: inside
    title = "bitlite runtime on emulated aarch64: guest instructions per inference"
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

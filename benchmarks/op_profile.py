"""Where one bitlite invoke's time goes, op by op.

    python -m benchmarks.op_profile [--model vgg8] [--runs 200] [--threads 1]
        [--kernel avx512] [--exports DIR]

Runs the model's binary export (built as ``benchmarks.kernels`` builds it, or
``DIR/NAME_binary.tflite``) through ``bitlite_runtime.Interpreter`` in a child process
with ``BITLITE_PROFILE`` set: the delegate then records each of its ops' start and end
(CLOCK_MONOTONIC), and the child brackets every phase of its invokes with the same
clock (the wrapper's input conversion and set_tensor, the host's invoke, the outputs'
get_tensor). A stretch of the host's invoke outside our ops is the host's own ops
between them (named from the model) plus the host's per-op dispatch. Prints the median
of each part, in microseconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time, numpy as np
sys.path.insert(0, {runtime!r})
from bitlite_runtime import Interpreter
it = Interpreter(open({model!r}, "rb").read(), num_threads={threads}, kernel={kernel!r})
inner = it._interpreter
x = np.random.default_rng(0).uniform(-1, 1, it.input_details[0]["shape"]).astype(np.float32)
for _ in range(20):
    it.invoke(x)
out = open({phases!r}, "w")
clock = time.monotonic_ns
for _ in range({runs}):
    t0 = clock()
    it.invoke(x)  # the wrapper, as users call it
    t1 = clock()
    inner.set_tensor(it._input_details[0]["index"], x)
    t2 = clock()
    inner.invoke()
    t3 = clock()
    [inner.get_tensor(i) for i in it._output_indices]
    t4 = clock()
    out.write(f"{{t0}} {{t1}} {{t2}} {{t3}} {{t4}}\n")
out.close()
del it, inner  # frees the delegate kernels: they append their records
"""


def host_ops_between(model: bytes, ours: list[int]) -> dict[int, list[str]]:
    """For each of our node indices (and len(ops) for the end), the host's ops that
    run after the previous one of ours and before it."""
    from pipeline.tflite.reader import read_model

    ops = read_model(model).ops
    between: dict[int, list[str]] = {}
    previous = -1
    for node in sorted(ours) + [len(ops)]:
        between[node] = [ops[i].type for i in range(previous + 1, node)]
        previous = node
    return between


def profile(model_path: Path, runs: int, threads: int, kernel: str) -> str:
    with tempfile.TemporaryDirectory(prefix="bitlite-op-profile-") as tmp:
        records, phases = Path(tmp) / "ops.txt", Path(tmp) / "phases.txt"
        code = CHILD.format(runtime=str(ROOT / "runtime"), model=str(model_path),
                            threads=threads, kernel=kernel, phases=str(phases), runs=runs)
        env = dict(os.environ, BITLITE_PROFILE=str(records))
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        invokes = np.loadtxt(phases, dtype=np.int64, ndmin=2)
        spans: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
        for line in records.read_text().splitlines():
            node, op, start, end = line.split()
            spans[(int(node), op)].append((int(start), int(end)))
    between = host_ops_between(model_path.read_bytes(), [node for node, _ in spans])
    return report(between, invokes, spans)


def report(between: dict[int, list[str]], invokes: np.ndarray,
           spans: dict[tuple[int, str], list[tuple[int, int]]]) -> str:
    """Each inner invoke (t2..t3 of a row of `invokes`) split at our ops' starts and
    ends; `between`: host_ops_between's names of the host ops in each stretch."""
    nodes = sorted(spans)
    starts = {key: np.array(v)[:, 0] for key, v in spans.items()}
    ends = {key: np.array(v)[:, 1] for key, v in spans.items()}
    rows: list[tuple[str, np.ndarray]] = []
    t2, t3 = invokes[:, 2], invokes[:, 3]
    picked = {}
    for key in nodes:  # per inner invoke, the record that starts first after its t2
        s, e = starts[key], ends[key]
        idx = np.searchsorted(s, t2)
        picked[key] = (s[idx], e[idx])
    previous_end = t2
    for key in nodes:
        s, e = picked[key]
        host = between[key[0]]
        if host:
            rows.append(("host: " + ", ".join(host), s - previous_end))
        else:
            rows.append(("gap (host dispatch)", s - previous_end))
        rows.append((f"node {key[0]} {key[1]}", e - s))
        previous_end = e
    rows.append(("host: " + (", ".join(between[max(between)]) or "—") + " + invoke return",
                 t3 - previous_end))
    wrapper = invokes[:, 1] - invokes[:, 0]
    inner = t3 - t2
    lines = ["| part | median us | share of the inner invoke |", "|---|---:|---:|"]
    total = float(np.median(inner))
    for label, dt in rows:
        us = float(np.median(dt)) / 1000
        lines.append(f"| {label} | {us:.1f} | {us * 1000 / total:.0%} |")
    ours = sum(float(np.median(picked[k][1] - picked[k][0])) for k in nodes) / 1000
    lines += [
        f"| **our ops, sum of medians** | {ours:.1f} | {ours * 1000 / total:.0%} |",
        f"| **host invoke (inner)** | {total / 1000:.1f} | 100% |",
        f"| set_tensor (host) | {np.median(invokes[:, 2] - invokes[:, 1]) / 1000:.1f} | |",
        f"| get_tensor of the outputs (host) | {np.median(invokes[:, 4] - t3) / 1000:.1f} | |",
        f"| **bitlite_runtime.Interpreter.invoke (the wrapper, all of it)** | "
        f"{np.median(wrapper) / 1000:.1f} | |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg8")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernel", default="avx512")
    parser.add_argument("--exports", type=Path, default=None,
                        help="use NAME_binary.tflite from this folder instead of building it")
    args = parser.parse_args()
    if args.runs < 1 or args.threads < 1:
        print("--runs and --threads must be >= 1", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="bitlite-op-profile-exports-") as tmp:
        if args.exports:
            path = args.exports / f"{args.model}_binary.tflite"
            if not path.is_file():
                print(f"no {path}", file=sys.stderr)
                sys.exit(2)
        else:
            import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
            from benchmarks.latency import build_exports

            path = build_exports(args.model, Path(tmp))["binary"]
        print(f"{args.model}, kernel {args.kernel}, {args.threads} thread(s), median of "
              f"{args.runs} invokes (us):\n")
        print(profile(path, args.runs, args.threads, args.kernel))


if __name__ == "__main__":
    main()

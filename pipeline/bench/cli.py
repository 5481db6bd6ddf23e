"""``python -m pipeline.bench``: on-device latency and ARM correctness of exported models.

    python -m pipeline.bench --model M.tflite --target host
    python -m pipeline.bench --run runs/latest --target qemu-aarch64 --compare
    python -m pipeline.bench --run runs/latest --target qemu-aarch64-trixie  # Python 3.13, LiteRT
    python -m pipeline.bench --model M.tflite --target ssh://pi@raspberrypi.local
    python -m pipeline.bench --model M.tflite --target adb --lce-benchmark ./lce_benchmark_model

Prints a table (min / median / p90 latency, model size, what ran) and writes it as JSON.
Emulated targets report guest instructions per inference instead of a latency, and check
outputs against the host's. ``--compare`` benchmarks a run's float, int8 and binary
exports on the same target and prints their ratios.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

import pipeline  # noqa: F401  (sets up the environment before anything imports TensorFlow)
from pipeline import cli, runs
from pipeline.bench.targets import SPECS, check_spec, make_target, report
from pipeline.bench.targets.base import ENGINES, Measurement, Settings
from pipeline.bench.targets.measure import measure, require_parity
from pipeline.bench.targets.model import inspect_model
from pipeline.errors import UsageError

# A run's exports, by kind: the LCE export and the baselines beside it.
EXPORTS = {"float": "model_float.tflite", "int8": "model_int8.tflite", "binary": runs.TFLITE}


def build_parser():
    p = cli.parser("python -m pipeline.bench", __doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="a .tflite file")
    src.add_argument("--run", help="a run directory (its model.tflite; see --compare)")
    p.add_argument("--target", required=True, help="one of: " + ", ".join(SPECS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20, help="timed inferences")
    p.add_argument("--warmup", type=int, default=3, help="untimed inferences first")
    p.add_argument("--compare", action="store_true",
                   help="run the float, int8 and binary exports of --run and print ratios")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto: TFLite for float/int8, bitlite's runtime for binary models; "
                        "lce: Larq Compute Engine's interpreter (on x86: its reference kernels)")
    p.add_argument("--input", type=Path, help=".npy input in [-1, 1]; none: a fixed pattern")
    p.add_argument("--json", type=Path, help="JSON output; none: bench-<target>.json in the run directory "
                   "(--run) or next to the model (--model)")
    p.add_argument("--remote-python", default="python3", help="ssh: the device's Python")
    p.add_argument("--lce-benchmark",
                   help="ssh with --engine lce: lce_benchmark_model's path on the device "
                        "(none: on its PATH); adb: the Android build on this machine to push")
    p.add_argument("--identity", help="ssh: private key file; none: ssh's own choice")
    p.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE",
                   help="ssh: an extra ssh -o option (repeatable)")
    return p  # fmt: skip


def _validate(args) -> None:
    for name in ("threads", "runs"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    if args.compare and args.run is None:
        raise UsageError(
            "--compare needs --run: it benchmarks one run's float, int8 and binary exports"
        )
    if args.input is not None and not args.input.is_file():
        raise UsageError(f"input {args.input} does not exist")


def _models(args) -> tuple[list[Path], Path]:
    """The models to run, and the default JSON path."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", args.target).strip("_")
    if args.model is not None:
        # next to the model, never the current directory: a checkout stays clean
        return [args.model], Path(args.model).with_name(f"bench-{slug}.json")
    run = runs.resolve(args.run)
    default_json = run.file(f"bench-{slug}.json")
    if not args.compare:
        path = run.file(runs.TFLITE)
        if not path.exists():
            raise UsageError(
                f"{run.path} has no {runs.TFLITE}: export it first (python -m pipeline.export)"
            )
        return [path], default_json
    found = [run.file(name) for name in EXPORTS.values() if run.file(name).exists()]
    missing = [name for name in EXPORTS.values() if not run.file(name).exists()]
    if len(found) < 2:
        raise UsageError(
            f"--compare needs at least two of {', '.join(EXPORTS.values())} in {run.path}; "
            f"missing: {', '.join(missing)} (python -m pipeline.export --baselines)"
        )
    for name in missing:
        print(f"note: {run.path} has no {name}; comparing the others", file=sys.stderr)
    return found, default_json


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _validate(args)
    models, default_json = _models(args)
    for path in models:  # every file readable before a target is built, reached or staged
        inspect_model(path)
    check_spec(args.target)
    given = {"remote_python": args.remote_python, "lce_benchmark": args.lce_benchmark,
             "identity": args.identity}  # fmt: skip
    options = {k: v for k, v in given.items() if v}
    if args.ssh_option:
        if not args.target.startswith("ssh://"):
            raise UsageError("--ssh-option is for ssh:// targets")
        options["ssh_options"] = tuple(args.ssh_option)
    target = make_target(args.target, progress=lambda s: print(s, file=sys.stderr), **options)
    settings = Settings(args.runs, args.warmup, args.threads, args.engine, args.input)
    results: list[Measurement] = []
    for path in tqdm(models, desc=f"bench on {args.target}", unit="model", disable=len(models) < 2):
        results.append(measure(path, target, settings))
    print(report.table(results))
    if args.compare:
        print()
        print(report.ratio_table(report.ratios(results)))
    out = args.json or default_json
    runs.write_json(out, report.to_json(args.target, settings, results))
    print(f"\nwrote {out}", file=sys.stderr)
    for m in results:
        require_parity(m)
    return 0


if __name__ == "__main__":
    cli.run(main)

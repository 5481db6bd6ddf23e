"""Fuzzing record of bitlite's runtime: executions and crashes, from one run each.

    python -m benchmarks.fuzz ops [--runs 10000000] [--minutes M]
    python -m benchmarks.fuzz models [--runs 1000000] [--minutes M] [--host litert]

``ops``: the op-level fuzzer (runtime/fuzz/run_fuzz.sh: libFuzzer + ASan + UBSan over
runtime/src/ops.cc, optimized kernels compared with the reference), table
benchmarks/results/fuzz_ops.md. ``models``: the model-level fuzzer
(runtime/fuzz/fuzz_models.py: mutated LCE and hand-built .tflite files loaded through
bitlite_runtime.Interpreter, i.e. its model check and then a real TFLite interpreter
with the ASan + UBSan build of the delegate), in worker processes of --batch executions
each; a worker that dies (a sanitizer report, a signal, a harness exception) is a crash,
placed in bitlite or the host by its stack (crash_site), its model is saved under
runtime/build/fuzz/models/crashes/ and the run continues after it. The table
(benchmarks/results/fuzz_models.md) is rewritten after every batch, so a run stopped by
--minutes (or Ctrl-C) still records how far it got. Exit status 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's runtime (its delegate is what is fuzzed), not an installed copy.
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT / "runtime" / "fuzz"))

from fuzz_models import OUTCOMES  # noqa: E402

from benchmarks.table import write_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "runtime" / "build"


# ------------------------------------------------------------------ op level


def run_ops(runs: int, minutes: float | None) -> int:
    limit = str(int(minutes * 60)) if minutes else "0"
    started = time.time()
    proc = subprocess.run([str(ROOT / "runtime" / "fuzz" / "run_fuzz.sh"), str(runs), limit],
                          capture_output=True, text=True)
    took = time.time() - started  # the build and seeding included
    if proc.returncode == 2:
        print(proc.stderr.strip(), file=sys.stderr)
        return 2
    log = (BUILD / "fuzz" / "fuzz.log").read_text(errors="replace")
    stats = dict(re.findall(r"^stat::(\w+):\s*(\d+)", log, re.M))
    done = re.findall(r"^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", log, re.M)
    executions = int(stats.get("number_of_executed_units", 0))
    crashed = proc.returncode != 0
    row = [
        "op level: ops.cc prepare + invoke on fuzzer-built nodes, optimized vs reference",
        f"{executions:,} of {runs:,}", "1" if crashed else "0",
        stats.get("average_exec_per_sec", "?"),
        done[-1][1] if done else "?", done[-1][3] if done else "?",
        f"{took / 60:.0f} min",
    ]
    body = (
        "| fuzzer | executions | crashes | exec/s | coverage (edges) | corpus | time |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n| " + " | ".join(row) + " |\n\n"
        "`runtime/fuzz/fuzz_prepare.cc` under libFuzzer (clang, ASan + UBSan), seeded with a "
        "valid node of every op and output type. Each execution builds one node of one of "
        "the five ops (every tensor's presence, type, rank, dims, allocation, byte count, "
        "sparsity and quantization, the custom options, the constants' bytes) and runs "
        "init, prepare and, when prepare accepts, invoke. A crash is also: a failure "
        "without a message, an invoke failure after prepare accepted a well-formed node, "
        "an LceBconv2d kernel (each one this CPU runs) writing other bytes than the "
        "reference convolution, LceQuantize's words differing from x < 0.\n"
    )
    if crashed:
        body += f"\nCrash (exit status {proc.returncode}); input under runtime/build/fuzz/:\n\n"
        body += "```\n" + "\n".join(log.splitlines()[-30:]) + "\n```\n"
    print(write_table(RESULTS / "fuzz_ops.md", "Op-level fuzzing (libFuzzer)", body))
    return 1 if crashed else 0


# ------------------------------------------------------------------ model level


def sanitizer_env(log_dir: Path, library: Path) -> dict[str, str]:
    def lib(name: str) -> str:
        return subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                              text=True, check=True).stdout.strip()

    env = dict(os.environ)
    env.update(
        LD_PRELOAD=f"{lib('libasan.so')}:{lib('libubsan.so')}",
        # handle_abort: an abort() in any library (a failed CHECK, std::terminate) gets
        # a stack too, so every crash can be placed (crash_site).
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0:"
                     "alloc_dealloc_mismatch=0:allocator_may_return_null=1:handle_abort=1:"
                     f"log_path={log_dir}/asan",
        UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={log_dir}/ubsan",
        BITLITE_LIBRARY=str(library),
        PYTHONPATH=f"{ROOT}:{ROOT / 'runtime'}",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    return env


# Where a frame's code lives, by the module or source file the sanitizer names.
_BITLITE_FRAME = re.compile(r"libbitlite_delegate|runtime/src/\w+\.(cc|h)")
_HOST_FRAME = re.compile(r"ai_edge_litert|tflite_runtime|tensorflow|_pywrap_|libtensorflow")
_FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ (.*)$", re.M)


def crash_site(report: str) -> str:
    """Where a worker died, from its sanitizer report or stderr: 'bitlite' (the
    innermost frame of ours or the host's is in bitlite's delegate), 'host' (in the
    TFLite runtime; '... called from bitlite' when a bitlite frame is further out),
    'harness' (a Python exception, no native stack), or 'unknown'."""
    frames = _FRAME.findall(report)
    for i, frame in enumerate(frames):
        if _BITLITE_FRAME.search(frame):
            return "bitlite"
        if _HOST_FRAME.search(frame):
            outer = any(_BITLITE_FRAME.search(f) for f in frames[i + 1:])
            return "host, called from bitlite" if outer else "host"
    if "Traceback (most recent call last)" in report:
        return "harness"
    return "unknown"


class ModelRun:
    """Counts of one model-level run, and its table."""

    def __init__(self, host: str, seeds: list[str]):
        self.host, self.seeds = host, seeds
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.crashes: list[tuple[str, str]] = []  # (site, description)
        self.started = time.time()

    @property
    def executions(self) -> int:
        return sum(self.counts.values()) + len(self.crashes)

    def write(self, target: int) -> str:
        seconds = time.time() - self.started
        c = self.counts
        sites = [site for site, _ in self.crashes]
        in_bitlite = sum(site == "bitlite" for site in sites)
        row = [self.host, f"{self.executions:,} of {target:,}", f"{c['ran']:,}",
               f"{c['malformed']:,}", f"{c['refused']:,}", f"{c['too_large']:,}",
               f"{c['invoke_error']:,}", f"{c['bitlite_invoke_error']:,}",
               f"{len(sites)} ({in_bitlite} in bitlite)",
               f"{self.executions / max(seconds, 1e-9):.0f}", f"{seconds / 60:.0f} min"]
        body = (
            "| host | executions | ran (invoked) | refused by the model check | refused at "
            "construction | inputs too large | invoke errors (host ops) | invoke errors "
            "(bitlite ops) | crashes | exec/s | time |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| " + " | ".join(row) +
            " |\n\n"
            "`runtime/fuzz/fuzz_models.py`: each execution mutates a seed model (tensor shapes, "
            "types, buffers, sparsity, quantization; op options, inputs, outputs, opcodes; "
            "raw bytes) and loads it as an app would, through `bitlite_runtime.Interpreter` "
            "with the ASan + UBSan build of bitlite's delegate (XNNPACK on in 4 of 5): the "
            "structural model check (`bitlite_runtime/model_check.py`), then the host's "
            "interpreter: construct, allocate, invoke on random inputs, read outputs. "
            "Refusals are the expected outcome of most mutations (the model check, the "
            "host's parser or bitlite's prepare says why); an invoke error of a bitlite op "
            "would be a finding (prepare must refuse what invoke cannot run). A crash is any "
            "worker death (a sanitizer report, a signal, an exception of the harness), placed "
            "by the innermost bitlite or host frame of its stack. Seeds: " +
            ", ".join(self.seeds) + ".\n"
        )
        if self.crashes:
            body += "\nCrashes (models saved):\n\n" + "\n".join(
                f"* {text}" for _, text in self.crashes) + "\n"
        return write_table(RESULTS / "fuzz_models.md",
                           "Model-level fuzzing (real TFLite interpreter, ASan + UBSan)", body)


def run_batch(run: ModelRun, env: dict, seeds_dir: Path, work: Path, start: int, count: int,
              seed: int) -> int:
    """One worker over executions [start, start + count); returns the next start."""
    current = work / "current.tflite"
    stderr_path = work / "worker.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "runtime" / "fuzz" / "fuzz_models.py"), "--seeds",
             str(seeds_dir), "--seed", str(seed), "--start", str(start), "--count", str(count),
             "--current", str(current), "--report", "1", "--host", run.host],
            stdout=subprocess.PIPE, stderr=stderr, env=env, text=True, cwd=ROOT)
        last: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        done = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == ["done"]:
                done = int(parts[1])
                last = {k: int(v) for k, v in zip(parts[2::2], parts[3::2], strict=True)}
        rc = proc.wait()
    for k in OUTCOMES:
        run.counts[k] += last.get(k, 0)
    if rc == 0:
        return start + count
    index = start + done  # the execution that was running
    crashes = work / "crashes"
    crashes.mkdir(exist_ok=True)
    saved = crashes / f"crash-{seed}-{index}.tflite"
    shutil.copy(current, saved)
    reports = sorted(work.glob("asan.*")) + sorted(work.glob("ubsan.*"))
    # UBSan (and some ASan) reports land on stderr, not in log_path files: read both.
    text = "\n".join(p.read_text(errors="replace") for p in [*reports, stderr_path])
    where = crash_site(text)
    for p in reports:
        shutil.move(p, crashes / f"{saved.stem}.{p.name}")
    if not reports:
        shutil.copy(stderr_path, crashes / f"{saved.stem}.stderr")
    run.crashes.append((where, f"execution {index} (exit status {rc}, in {where}): "
                               f"{saved.relative_to(ROOT)}"))
    return index + 1


def run_models(runs: int, minutes: float | None, host: str | None, batch: int, seed: int) -> int:
    from bitlite_runtime import hosts

    host_name = hosts.resolve(host).name
    work = BUILD / "fuzz" / "models"
    seeds_dir = work / "seeds"
    shutil.rmtree(seeds_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "bitlite_runtime.build", "--sanitize", "--out",
                    str(BUILD / "asan")], check=True, cwd=ROOT / "runtime",
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(ROOT / "runtime" / "fuzz" / "seeds.py"), str(seeds_dir)],
                   check=True)
    env = sanitizer_env(work, BUILD / "asan" / "libbitlite_delegate.so")
    run = ModelRun(host_name, sorted(p.stem for p in seeds_dir.glob("*.tflite")))
    deadline = time.time() + minutes * 60 if minutes else None
    start = 0
    try:
        while start < runs and (deadline is None or time.time() < deadline):
            start = run_batch(run, env, seeds_dir, work, start, min(batch, runs - start), seed)
            run.write(runs)
    except KeyboardInterrupt:
        pass
    print(run.write(runs))
    return 1 if run.crashes else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="fuzzer", required=True)
    ops = sub.add_parser("ops", help="op-level libFuzzer run")
    ops.add_argument("--runs", type=int, default=10_000_000)
    ops.add_argument("--minutes", type=float, help="stop after this long (table says so)")
    models = sub.add_parser("models", help="model-level run in a real interpreter")
    models.add_argument("--runs", type=int, default=1_000_000)
    models.add_argument("--minutes", type=float, help="stop after this long (table says so)")
    models.add_argument("--host", help="litert | tflite_runtime | tensorflow")
    models.add_argument("--batch", type=int, default=20_000, help="executions per worker")
    models.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.runs < 1:
        print("error: --runs must be >= 1", file=sys.stderr)
        return 2
    if args.minutes is not None and args.minutes <= 0:
        print("error: --minutes must be positive", file=sys.stderr)
        return 2
    if args.fuzzer == "ops":
        return run_ops(args.runs, args.minutes)
    if args.batch < 1:
        print("error: --batch must be positive", file=sys.stderr)
        return 2
    return run_models(args.runs, args.minutes, args.host, args.batch, args.seed)


if __name__ == "__main__":
    sys.exit(main())

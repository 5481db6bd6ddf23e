"""Running Larq Compute Engine's ``lce_benchmark_model`` and reading its output.

``lce_benchmark_model`` is TFLite's benchmark tool linked with LCE's optimized ARM kernels;
users build it for their board or phone. It prints its timing statistics in
microseconds, for the warm-up and then the timed runs, as lines like::

    count=50 first=1339 curr=1130 min=1120 max=1200 avg=1135.41 std=15

It reports min and mean, not every inference, so no median or p90 exists for it.
"""

from __future__ import annotations

import re
import shlex

from pipeline.bench.targets.base import Measurement, Settings, TargetError
from pipeline.bench.targets.model import ModelInfo

STATS = re.compile(r"count=(\d+)\s.*?min=([\d.]+)\s+max=([\d.]+)\s+avg=([\d.]+)")
KERNELS = "LCE optimized kernels (lce_benchmark_model)"


def command(binary: str, model: str, threads: int, runs: int, warmup: int) -> str:
    """The shell command line that benchmarks ``model`` with exactly ``runs`` inferences."""
    return " ".join(shlex.quote(a) for a in [
        binary, f"--graph={model}", f"--num_threads={threads}",
        f"--num_runs={runs}", "--min_secs=0", f"--warmup_runs={max(warmup, 1)}",
        "--warmup_min_secs=0",
    ])  # fmt: skip


def parse(output: str, where: str) -> dict[str, float]:
    """min / mean latency (ms) and the count of the timed runs: the last stats line."""
    found = STATS.findall(output)
    if not found:
        tail = [ln for ln in output.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise TargetError(f"{where}: lce_benchmark_model printed no timings: {tail[0]}")
    count, low, _high, mean = found[-1]
    return {"count": int(count), "min_ms": float(low) / 1e3, "mean_ms": float(mean) / 1e3}


def measurement(
    target: str, model: ModelInfo, settings: Settings, stats: dict[str, float], cpu: str, os: str
) -> Measurement:
    """The Measurement of one ``lce_benchmark_model`` run (parsed by :func:`parse`)."""
    m = Measurement(
        target=target, model=str(model.path), kind=model.kind,
        size_bytes=model.size_bytes, engine="lce", kernels=KERNELS, cpu=cpu, os=os,
        threads=settings.threads, runs=stats["count"], warmup=settings.warmup,
        tool_stats_ms=stats,
    )  # fmt: skip
    m.notes.append(f"lce_benchmark_model reports min and mean only (mean "
                   f"{stats['mean_ms']:.3f} ms); outputs are not compared")  # fmt: skip
    return m

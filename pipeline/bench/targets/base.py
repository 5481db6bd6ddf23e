"""The bench target interface, what a run measures, and the checks every target shares.

A target is where a model runs: this machine, an emulated ARM CPU, a board over SSH, a
phone over adb. Each is one small class with three steps — ``prepare`` (make the target
ready for this model: tools, sysroot, files copied), ``run`` (N timed inferences) and the
``Measurement`` it returns, which reports itself.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.targets.model import ModelInfo
from pipeline.errors import TargetError, UsageError

RUNNER = Path(__file__).with_name("runner.py")
RUNNER_ERROR = "BITLITE_ERROR "
RUNNER_RESULT = "BITLITE_RESULT "
ENGINES = ("auto", "lce")


@dataclass(frozen=True)
class Settings:
    runs: int = 20
    warmup: int = 3
    threads: int = 1
    engine: str = "auto"  # "auto": TFLite for float/int8, bitlite runtime for binary; "lce"
    input: Path | None = None  # .npy in the model's [-1, 1] input range; None: fixed pattern


def runner_engine(model: ModelInfo, engine: str) -> str:
    """Which interpreter the runner uses: the one engine name every target agrees on."""
    if engine == "lce":
        return "lce"
    return "bitlite" if model.needs_custom_ops else "tflite"


@dataclass
class Measurement:
    """What one target measured for one model, and what exactly ran."""

    target: str
    model: str
    kind: str
    size_bytes: int
    engine: str
    kernels: str
    cpu: str
    os: str
    threads: int
    runs: int
    warmup: int
    latencies_ms: list[float] = field(default_factory=list)
    latency_is_device: bool = True  # False under emulation: wall time says nothing there
    tool_stats_ms: dict[str, float] | None = None  # a tool's own summary (min/mean), if no list
    instructions_per_invoke: int | None = None
    instructions_spread: float | None = None  # (max - min) / median over the timed invokes
    parity: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def latency(self) -> dict[str, float | None]:
        if self.tool_stats_ms is not None:
            return {"min_ms": self.tool_stats_ms["min_ms"], "median_ms": None, "p90_ms": None}
        if not self.latencies_ms or not self.latency_is_device:
            return {"min_ms": None, "median_ms": None, "p90_ms": None}
        lat = np.asarray(self.latencies_ms)
        return {
            "min_ms": float(lat.min()),
            "median_ms": float(np.median(lat)),
            "p90_ms": float(np.percentile(lat, 90)),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), **self.latency()}


class Target(ABC):
    """Where a model runs. Subclasses set ``name`` and implement prepare and run."""

    name: str

    @abstractmethod
    def prepare(self, model: ModelInfo, settings: Settings) -> None:
        """Make the target ready for this model; raise TargetError with one line if not."""

    @abstractmethod
    def run(self, model: ModelInfo, settings: Settings, output: Path) -> Measurement:
        """Run the model ``settings.runs`` times after warm-up; save its output to ``output``."""

    @property
    def checks_parity(self) -> bool:
        """Whether this target's outputs should be compared with the host's."""
        return False


def runner_args(
    model: str, settings: Settings, engine: str, output: str, input: str | None
) -> list[str]:
    args = [
        "--model", model, "--engine", engine, "--threads", str(settings.threads),
        "--runs", str(settings.runs), "--warmup", str(settings.warmup), "--output", output,
    ]  # fmt: skip
    return args + (["--input", input] if input else [])


def parse_runner(proc: subprocess.CompletedProcess, where: str) -> dict[str, Any]:
    """The runner's result, or its one-line error, or a clear note that it crashed."""
    lines = proc.stdout.splitlines() if isinstance(proc.stdout, str) else []
    for line in lines:
        if line.startswith(RUNNER_ERROR):
            raise UsageError(f"{where}: {line[len(RUNNER_ERROR):]}")
        if line.startswith(RUNNER_RESULT):
            return json.loads(line[len(RUNNER_RESULT):])
    if proc.returncode < 0 or proc.returncode >= 128:
        raise TargetError(
            f"{where}: the runtime crashed (exit status {proc.returncode}); "
            "the model may be damaged or use an op this runtime lacks"
        )
    tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
    raise TargetError(f"{where}: the runner failed (exit status {proc.returncode}): {tail[0]}")


def measurement(
    target: str, model: ModelInfo, settings: Settings, result: dict[str, Any]
) -> Measurement:
    return Measurement(
        target=target,
        model=str(model.path),
        kind=model.kind,
        size_bytes=model.size_bytes,
        engine=result["engine"],
        kernels=result["kernels"],
        cpu=result["cpu"],
        os=result["os"],
        threads=result["threads"],
        runs=settings.runs,
        warmup=settings.warmup,
        latencies_ms=result["latencies_ms"],
    )


def compare_outputs(
    kind: str, ours: np.ndarray, reference: np.ndarray, binarizes: bool = False,
    step: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Do two runtimes agree? Float outputs to 1e-3, integer outputs to one step, and
    float outputs dequantized from int8 (``step``: their scale) to one step too: int8
    kernels on different CPUs (XNNPACK on x86, TFLite's NEON kernels on ARM) may round
    one requantization differently, which moves an output by exactly one step.

    Models that binarize (binary models, and float or int8 exports of a binary network,
    which keep TFLite SIGN ops) are compared by their top-1 class: a binary activation is
    the sign of a float value, and float kernels on different CPUs (FMA or not, summation
    order) round values near zero differently, which flips a few signs and moves the
    scores even when every kernel is exact. The largest difference is still reported.
    """
    if ours.shape != reference.shape:
        return {"ok": False, "reason": f"output shapes differ: {ours.shape} vs {reference.shape}"}
    diff = float(np.max(np.abs(ours.astype(np.float64) - reference.astype(np.float64))))
    if (binarizes or kind == "binary") and reference.shape[-1] > 1:
        same = bool(np.array_equal(ours.argmax(-1), reference.argmax(-1)))
        return {"ok": same, "max_abs_diff": diff, "criterion": "top-1", "kind": kind}
    tolerance = 1.0 if np.issubdtype(reference.dtype, np.integer) else 1e-3
    if step is not None and not np.issubdtype(reference.dtype, np.integer):
        tolerance = max(tolerance, step * (1 + 1e-6))  # float32 rounding of k * scale
    return {"ok": diff <= tolerance, "max_abs_diff": diff, "tolerance": tolerance, "kind": kind}


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="bitlite-bench-")


def run_command(
    cmd: Sequence[str], where: str, timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess:
    """Run a command with a time limit; a timeout is a one-line TargetError."""
    try:
        kwargs.setdefault("text", True)
        return subprocess.run(cmd, capture_output=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{where}: no result after {timeout:.0f} s") from None
    except FileNotFoundError:
        raise TargetError(f"{where}: {cmd[0]} is not installed") from None

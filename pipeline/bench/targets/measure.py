"""Measure one model on one target, checking its outputs against the host's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.bench.targets.base import (
    Measurement,
    Settings,
    Target,
    TargetError,
    compare_outputs,
    scratch_dir,
)
from pipeline.bench.targets.host import HostTarget
from pipeline.bench.targets.model import inspect_model
from pipeline.errors import ParityError


def measure(model_path: Path, target: Target, settings: Settings) -> Measurement:
    """Prepare the target, run the model, and (off-host) compare outputs with the host.

    A parity failure is recorded in the measurement and raised as ParityError by the
    caller's choice (see ``require_parity``), so the figures are still reported.
    """
    model = inspect_model(model_path)
    target.prepare(model, settings)
    with scratch_dir() as tmp:
        output = Path(tmp) / "output.npy"
        result = target.run(model, settings, output)
        if target.checks_parity and output.exists():  # lce_benchmark_model saves none
            result.parity = _parity(model, settings, output, Path(tmp))
    return result


def _parity(model, settings: Settings, output: Path, tmp: Path) -> dict:
    """Run the same model and input once on the host and compare the first outputs."""
    host = HostTarget()
    reference = tmp / "reference.npy"
    once = Settings(runs=1, warmup=0, threads=1, engine=settings.engine, input=settings.input)
    try:
        host.prepare(model, once)
        host.run(model, once, reference)
    except TargetError as err:
        return {"ok": None, "reason": f"not checked: the host cannot run it ({err})"}
    return compare_outputs(model.kind, np.load(output), np.load(reference), model.binarizes,
                           model.output_step)


def require_parity(m: Measurement) -> None:
    if m.parity and m.parity.get("ok") is False:
        if "reason" in m.parity:
            detail = m.parity["reason"]
        elif m.parity.get("criterion") == "top-1":
            detail = "a different top-1 class"
        else:
            detail = f"max |difference| {m.parity['max_abs_diff']:.3g} > {m.parity['tolerance']:g}"
        raise ParityError(f"{m.target}: output differs from the host's ({detail})")

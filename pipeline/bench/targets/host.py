"""The host target: this machine, running the model in a fresh Python process.

Float and int8 models run on stock TFLite (LiteRT, else ``tflite_runtime``; XNNPACK
delegate where it can); binary models on bitlite's runtime; ``--engine lce`` runs Larq
Compute Engine's own interpreter, which on x86 uses LCE's portable reference kernels —
labelled so, and never a device figure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline import runtime
from pipeline.bench.targets.base import (
    RUNNER,
    Measurement,
    Settings,
    Target,
    measurement,
    parse_runner,
    run_command,
    runner_args,
    runner_engine,
)
from pipeline.bench.targets.model import ModelInfo

TIMEOUT_S = 600


class HostTarget(Target):
    name = "host"

    def __init__(self) -> None:
        self.pythonpath: list[str] = []

    def prepare(self, model: ModelInfo, settings: Settings) -> None:
        if runner_engine(model, settings.engine) == "bitlite":
            self.pythonpath = [str(runtime.package_dir())]

    def run(self, model: ModelInfo, settings: Settings, output: Path) -> Measurement:
        engine = runner_engine(model, settings.engine)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(self.pythonpath + [env.get("PYTHONPATH", "")])
        input = str(settings.input) if settings.input else None
        cmd = [sys.executable, str(RUNNER)]
        cmd += runner_args(str(model.path), settings, engine, str(output), input)
        proc = run_command(cmd, "host", TIMEOUT_S, env=env)
        return measurement(self.name, model, settings, parse_runner(proc, "host"))

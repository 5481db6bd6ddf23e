"""Emulated ARM targets: ``qemu-aarch64``, ``qemu-aarch64-trixie`` and ``qemu-armhf``
(qemu-user, no device needed).

The model runs inside an ARM Python sysroot under qemu-user: Debian 12's Python 3.11 with
the ARM build of ``tflite-runtime`` 2.14 (``qemu-aarch64``, ``qemu-armhf``), or Debian 13's
Python 3.13 with LiteRT's cp313 wheel (``qemu-aarch64-trixie``: Raspberry Pi OS trixie on a
Pi 4/5); binary models on bitlite's delegate cross-built for the architecture. Two
things come out of it that a device would give: the outputs, checked against the host's
(parity), and a cost figure — guest instructions per inference, counted exactly by the
icount plugin. Wall time under emulation is not a device latency, so none is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipeline import runtime
from pipeline.bench.targets import icount, sysroot
from pipeline.bench.targets.base import (
    RUNNER,
    Measurement,
    Settings,
    Target,
    TargetError,
    measurement,
    parse_runner,
    run_command,
    runner_args,
    runner_engine,
)
from pipeline.bench.targets.model import ModelInfo

TIMEOUT_S = 900


class QemuTarget(Target):
    def __init__(self, sysroot_name: str, progress=print) -> None:
        """``sysroot_name``: a key of sysroot.RECIPES ("aarch64", "aarch64-trixie", ...)."""
        self.sysroot_name = sysroot_name
        self.arch = sysroot.RECIPES[sysroot_name].arch
        self.name = f"qemu-{sysroot_name}"
        self.progress = progress
        self.root: sysroot.Sysroot | None = None
        self.plugin: Path | None = None
        self.extra_site: Path | None = None

    @property
    def checks_parity(self) -> bool:
        return True

    def prepare(self, model: ModelInfo, settings: Settings) -> None:
        engine = runner_engine(model, settings.engine)
        if engine == "lce":
            raise TargetError(
                f"{self.name}: there is no ARM build of larq-compute-engine's interpreter to "
                "emulate; binary models run here on bitlite's runtime (drop --engine lce)"
            )
        qemu = sysroot.ARCHES[self.arch].qemu
        if shutil.which(qemu) is None:
            raise TargetError(f"{self.name}: {qemu} is not installed (apt-get install qemu-user)")
        self.root = sysroot.ensure(self.sysroot_name, self.progress)
        self.plugin = icount.build_plugin()
        if engine == "bitlite":
            self.extra_site = sysroot.cache_root() / "runtime" / self.arch
            self.extra_site.mkdir(parents=True, exist_ok=True)
            runtime.stage(self.arch, self.extra_site)

    def run(self, model: ModelInfo, settings: Settings, output: Path) -> Measurement:
        assert self.root is not None and self.plugin is not None, "prepare() first"
        counts = output.with_suffix(".icount")
        input = str(settings.input) if settings.input else None
        engine = runner_engine(model, settings.engine)
        cmd = [
            self.root.qemu, *self.root.qemu_args, "-L", str(self.root.root),
            "-plugin", f"{self.plugin},out={counts}",
            str(self.root.python), str(RUNNER),
            *runner_args(str(model.path), settings, engine, str(output), input), "--markers",
        ]  # fmt: skip
        proc = run_command(cmd, self.name, TIMEOUT_S, env=self._guest_env())
        if "Could not load plugin" in proc.stderr:
            raise TargetError(f"{self.name}: {proc.stderr.strip().splitlines()[0]}")
        result = parse_runner(proc, self.name)
        m = measurement(self.name, model, settings, result)
        m.latency_is_device = False
        qemu = " ".join([_qemu_version(self.root.qemu), *self.root.qemu_args])
        m.cpu = f"emulated {result['machine']} ({qemu}) on {result['cpu']}"
        m.instructions_per_invoke, m.instructions_spread = icount.summarize(
            icount.read_counts(counts)
        )
        m.notes.append(
            "wall time under emulation is not a device latency; instructions per inference "
            "(guest instructions between the runner's markers: set input, invoke, read output) "
            "is the cost figure"
        )
        return m

    def _guest_env(self) -> dict[str, str]:
        """A small, fixed environment: qemu-user hands the host's environment to the guest."""
        assert self.root is not None
        paths = [str(self.root.site)] + ([str(self.extra_site)] if self.extra_site else [])
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONHASHSEED": "0",  # the same dict layouts on every run: repeatable counts
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }


def _qemu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].split(" (")[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return binary

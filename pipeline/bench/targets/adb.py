"""The Android target, ``adb`` or ``adb:SERIAL``: LCE's benchmark tool on a phone.

Pushes the user's ``lce_benchmark_model`` (built for Android by LCE's instructions) and
the model to /data/local/tmp with Debian's ``adb``, runs the tool and reads its timings.
Python is not assumed on a phone, so there is no output check here; check ARM
correctness with the qemu-aarch64 target.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from pipeline.bench.targets import lce_benchmark
from pipeline.bench.targets.base import Measurement, Settings, Target, TargetError, run_command
from pipeline.bench.targets.model import ModelInfo
from pipeline.errors import UsageError

DEVICE_DIR = "/data/local/tmp"
TIMEOUT_S = 900


class AdbTarget(Target):
    def __init__(self, serial: str | None = None, lce_benchmark: str | None = None, **_) -> None:
        self.serial = serial
        self.name = f"adb:{serial}" if serial else "adb"
        self.binary = Path(lce_benchmark) if lce_benchmark else None
        self.remote_binary = f"{DEVICE_DIR}/lce_benchmark_model"

    def adb(self, *args: str, timeout: float = 60):
        cmd = ["adb", *(["-s", self.serial] if self.serial else []), *args]
        return run_command(cmd, self.name, timeout)

    def prepare(self, model: ModelInfo, settings: Settings) -> None:
        if self.binary is None:
            raise UsageError(
                "the adb target runs LCE's lce_benchmark_model built for Android: "
                "pass its path on this machine with --lce-benchmark"
            )
        if not self.binary.is_file():
            raise UsageError(f"--lce-benchmark {self.binary} does not exist")
        if shutil.which("adb") is None:
            raise TargetError("adb is not installed (apt-get install adb)")
        state = self.adb("get-state", timeout=30)
        if state.returncode != 0 or state.stdout.strip() != "device":
            reason = (state.stderr or state.stdout).strip().splitlines()[-1:] or ["not ready"]
            raise TargetError(f"{self.name}: no Android device ready ({reason[0]})")
        for local, remote in ((self.binary, self.remote_binary),
                              (model.path, f"{DEVICE_DIR}/bitlite-model.tflite")):  # fmt: skip
            pushed = self.adb("push", str(local), remote, timeout=300)
            if pushed.returncode != 0:
                raise TargetError(f"{self.name}: adb push {local.name} failed: "
                                  f"{pushed.stderr.strip()}")  # fmt: skip
        self.adb("shell", f"chmod 755 {shlex.quote(self.remote_binary)}")

    def run(self, model: ModelInfo, settings: Settings, output: Path) -> Measurement:
        model_path = f"{DEVICE_DIR}/bitlite-model.tflite"
        command = lce_benchmark.command(self.remote_binary, model_path, settings.threads,
                                        settings.runs, settings.warmup)  # fmt: skip
        proc = self.adb("shell", command + " 2>&1", timeout=TIMEOUT_S)
        stats = lce_benchmark.parse(proc.stdout, self.name)
        props = {key: self.adb("shell", "getprop", key).stdout.strip()
                 for key in ("ro.product.model", "ro.soc.model", "ro.build.version.release")}
        self.adb("shell", f"rm -f {shlex.quote(model_path)}")
        cpu = props["ro.soc.model"] or props["ro.product.model"] or "unknown"
        os = f"Android {props['ro.build.version.release']} ({props['ro.product.model']})"
        return lce_benchmark.measurement(self.name, model, settings, stats, cpu, os)

"""The SSH target: a Raspberry Pi or any Linux board, ``ssh://user@host[:port]``.

The model, the runner (numpy + tflite_runtime only) and — for binary models — bitlite's
runtime cross-built for the board's architecture travel over the SSH connection itself
(a tar stream into a fresh temporary directory; no scp or sftp needed on the board). The
runner's output comes back the same way. With ``--engine lce`` the board's own
``lce_benchmark_model`` runs instead (its path set with ``--lce-benchmark``).
"""

from __future__ import annotations

import io
import platform
import shlex
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import runtime
from pipeline.bench.targets import lce_benchmark
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
from pipeline.errors import UsageError

CONNECT_TIMEOUT_S = 10
RUN_TIMEOUT_S = 900
ARCH_OF_MACHINE = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "armhf", "armv8l": "armhf"}


class SshTarget(Target):
    def __init__(
        self,
        user: str | None,
        host: str,
        port: int = 22,
        remote_python: str = "python3",
        lce_benchmark: str = "lce_benchmark_model",
        identity: str | None = None,
        ssh_options: tuple[str, ...] = (),
    ) -> None:
        self.user, self.host, self.port = user, host, port
        self.name = f"ssh://{user + '@' if user else ''}{host}:{port}"
        self.remote_python = remote_python
        self.lce_benchmark = lce_benchmark
        self.identity = identity
        self.ssh_options = ssh_options
        self.workdir: str | None = None

    @classmethod
    def from_url(cls, url: str, **options) -> SshTarget:
        parts = urlsplit(url)
        try:
            port = parts.port or 22
        except ValueError:
            raise UsageError(f"bad port in '{url}'") from None
        if not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"'{url}' is not of the form ssh://user@host[:port]")
        return cls(parts.username, parts.hostname, port, **options)

    @property
    def checks_parity(self) -> bool:
        return True

    # -- transport ----------------------------------------------------------------------
    def _ssh(self) -> list[str]:
        cmd = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes",
               "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "LogLevel=ERROR"]  # fmt: skip
        if self.identity:
            cmd += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        for option in self.ssh_options:
            cmd += ["-o", option]
        return cmd + [f"{self.user}@{self.host}" if self.user else self.host]

    def shell(self, command: str, timeout: float = 60, stdin: bytes | None = None):
        """Run a shell command on the device; an SSH failure (exit 255) is one clear line."""
        proc = run_command(
            [*self._ssh(), command], self.name, timeout, input=stdin, text=stdin is None
        )
        if proc.returncode == 255:
            err = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
            last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or ["no reply"]
            raise TargetError(f"cannot reach {self.name} over SSH: {last[0]}")
        return proc

    def upload(self, files: dict[str, Path]) -> None:
        """Copy local files to the work directory, as one tar stream over SSH."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, path in files.items():
                tar.add(str(path), arcname=name)
        proc = self.shell(f"tar -C {shlex.quote(self.workdir)} -xf -", stdin=buf.getvalue())
        if proc.returncode != 0:
            raise TargetError(f"{self.name}: copying files failed: {proc.stderr.decode().strip()}")

    def download(self, name: str, dest: Path) -> None:
        proc = run_command([*self._ssh(), f"cat {shlex.quote(self.workdir + '/' + name)}"],
                           self.name, 120, text=False)  # fmt: skip
        if proc.returncode != 0:
            raise TargetError(f"{self.name}: the device wrote no {name}")
        dest.write_bytes(proc.stdout)

    # -- Target -------------------------------------------------------------------------
    def prepare(self, model: ModelInfo, settings: Settings) -> None:
        machine = self.shell("uname -m").stdout.strip()
        engine = runner_engine(model, settings.engine)
        if engine == "lce":
            check = self.shell(f"command -v {shlex.quote(self.lce_benchmark)}")
            if check.returncode != 0:
                raise TargetError(
                    f"{self.name}: {self.lce_benchmark} is not on the device "
                    "(build LCE's lce_benchmark_model for it; set its path with --lce-benchmark)"
                )
        else:
            check = self.shell(f"command -v {shlex.quote(self.remote_python)}")
            if check.returncode != 0:
                raise TargetError(f"{self.name}: {self.remote_python} is not on the device "
                                  "(set the device's Python with --remote-python)")  # fmt: skip
        self.workdir = self.shell("mktemp -d /tmp/bitlite-bench.XXXXXX").stdout.strip()
        files = {"model.tflite": model.path, "runner.py": RUNNER}
        if settings.input is not None:
            files["input.npy"] = settings.input
        try:
            self.upload(files)
            if engine == "bitlite":
                self._upload_runtime(machine)
        except TargetError:
            self.shell(f"rm -rf {shlex.quote(self.workdir)}")  # leave nothing behind
            raise

    def _upload_runtime(self, machine: str) -> None:
        arch = ARCH_OF_MACHINE.get(machine, "host" if machine == platform.machine() else None)
        if arch is None:
            raise TargetError(f"{self.name}: no bitlite runtime build for a {machine} device")
        with tempfile.TemporaryDirectory(prefix="bitlite-runtime-") as tmp:
            runtime.stage(arch, Path(tmp))
            self.upload({"bitlite_runtime": Path(tmp) / "bitlite_runtime"})

    def run(self, model: ModelInfo, settings: Settings, output: Path) -> Measurement:
        assert self.workdir is not None, "prepare() first"
        engine = runner_engine(model, settings.engine)
        try:
            if engine == "lce":
                return self._run_lce(model, settings)
            return self._run_runner(model, settings, engine, output)
        finally:
            self.shell(f"rm -rf {shlex.quote(self.workdir)}")

    def _run_runner(self, model, settings, engine, output: Path) -> Measurement:
        input = "input.npy" if settings.input is not None else None
        args = runner_args("model.tflite", settings, engine, "output.npy", input)
        command = (f"cd {shlex.quote(self.workdir)} && PYTHONPATH=. "
                   f"{shlex.quote(self.remote_python)} runner.py {shlex.join(args)}")  # fmt: skip
        proc = self.shell(command, timeout=RUN_TIMEOUT_S)
        result = parse_runner(proc, self.name)
        self.download("output.npy", output)
        m = measurement(self.name, model, settings, result)
        m.model = str(model.path)
        return m

    def _run_lce(self, model: ModelInfo, settings: Settings) -> Measurement:
        model_path = f"{self.workdir}/model.tflite"
        command = lce_benchmark.command(
            self.lce_benchmark, model_path, settings.threads, settings.runs, settings.warmup
        )
        proc = self.shell(command + " 2>&1", timeout=RUN_TIMEOUT_S)
        stats = lce_benchmark.parse(proc.stdout, self.name)
        about = self.shell("uname -srm; grep -m1 -E 'model name|Model' /proc/cpuinfo").stdout
        lines = about.strip().splitlines() + [""]
        cpu = lines[1].split(":", 1)[-1].strip() or lines[0]
        return lce_benchmark.measurement(self.name, model, settings, stats, cpu, lines[0])

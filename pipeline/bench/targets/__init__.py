"""Bench targets: where a model runs. ``make_target(spec)`` picks one by its name.

- ``host``: this machine.
- ``qemu-aarch64``, ``qemu-armhf``: an emulated ARM CPU (qemu-user) with an ARM Python sysroot.
- ``ssh://user@host[:port]``: a Raspberry Pi or any Linux board reachable over SSH.
- ``adb`` or ``adb:SERIAL``: an Android device, running ``lce_benchmark_model``.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.bench.targets.base import Target
from pipeline.errors import UsageError

SPECS = ("host", "qemu-aarch64", "qemu-armhf", "ssh://user@host[:port]", "adb[:SERIAL]")


def check_spec(spec: object) -> str:
    """Raise UsageError unless ``spec`` names a target; nothing is started or reached."""
    if not isinstance(spec, str):
        raise UsageError(f"a bench target is a string such as 'host', got {spec!r}")
    known = spec in ("host", "qemu-aarch64", "qemu-armhf", "adb") or spec.startswith("adb:")
    if not known and not (spec.startswith("ssh://") and len(spec) > len("ssh://")):
        raise UsageError(f"unknown target '{spec}'; choose one of: {', '.join(SPECS)}")
    return spec


def make_target(spec: str, progress: Callable[[str], None] = print, **options: str) -> Target:
    """The target for a ``--target`` value; options are target-specific paths."""
    check_spec(spec)
    if spec == "host":
        from pipeline.bench.targets.host import HostTarget

        return HostTarget()
    if spec in ("qemu-aarch64", "qemu-armhf"):
        from pipeline.bench.targets.qemu import QemuTarget

        return QemuTarget(spec.removeprefix("qemu-"), progress)
    if spec.startswith("ssh://"):
        from pipeline.bench.targets.ssh import SshTarget

        return SshTarget.from_url(spec, **options)
    if spec == "adb" or spec.startswith("adb:"):
        from pipeline.bench.targets.adb import AdbTarget

        return AdbTarget(spec.partition(":")[2] or None, **options)
    raise UsageError(f"unknown target '{spec}'; choose one of: {', '.join(SPECS)}")

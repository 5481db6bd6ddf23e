"""Bench targets: where a model runs. ``make_target(spec)`` picks one by its name.

- ``host``: this machine.
- ``qemu-aarch64``, ``qemu-armhf``: an emulated ARM CPU (qemu-user) with an ARM Python sysroot
  (Debian 12: Python 3.11, tflite-runtime 2.14).
- ``qemu-aarch64-trixie``: the same CPU with Debian 13's Python 3.13 and LiteRT (Raspberry Pi
  OS trixie).
- ``ssh://user@host[:port]``: a Raspberry Pi or any Linux board reachable over SSH.
- ``adb`` or ``adb:SERIAL``: an Android device, running ``lce_benchmark_model``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.errors import UsageError

if TYPE_CHECKING:  # base imports numpy; `python -m ...targets.sysroot` runs before pip does
    from pipeline.bench.targets.base import Target

QEMU_SPECS = ("qemu-aarch64", "qemu-aarch64-trixie", "qemu-armhf")
SPECS = ("host", *QEMU_SPECS, "ssh://user@host[:port]", "adb[:SERIAL]")


def check_spec(spec: object) -> str:
    """Raise UsageError unless ``spec`` names a target; nothing is started or reached."""
    if not isinstance(spec, str):
        raise UsageError(f"a bench target is a string such as 'host', got {spec!r}")
    known = spec in ("host", *QEMU_SPECS, "adb") or spec.startswith("adb:")
    if not known and not (spec.startswith("ssh://") and len(spec) > len("ssh://")):
        raise UsageError(f"unknown target '{spec}'; choose one of: {', '.join(SPECS)}")
    return spec


def make_target(spec: str, progress: Callable[[str], None] = print, **options: str) -> Target:
    """The target for a ``--target`` value; options are target-specific paths."""
    check_spec(spec)
    if spec == "host":
        from pipeline.bench.targets.host import HostTarget

        return HostTarget()
    if spec in QEMU_SPECS:
        from pipeline.bench.targets.qemu import QemuTarget

        return QemuTarget(spec.removeprefix("qemu-"), progress)
    if spec.startswith("ssh://"):
        from pipeline.bench.targets.ssh import SshTarget

        return SshTarget.from_url(spec, **options)
    if spec == "adb" or spec.startswith("adb:"):
        from pipeline.bench.targets.adb import AdbTarget

        return AdbTarget(spec.partition(":")[2] or None, **options)
    raise UsageError(f"unknown target '{spec}'; choose one of: {', '.join(SPECS)}")

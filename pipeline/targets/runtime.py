"""Finding and staging bitlite's own runtime (``bitlite_runtime``) for a target.

The runtime — TFLite plus our kernels for Larq Compute Engine's ops — lives in its own
package; the bench only locates it on this machine and, for an ARM target, stages the
package with a library cross-built for that architecture. Where the runtime is missing
or cannot be built, the message says so: binary models then do not run, they are never
given a made-up figure.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from types import ModuleType

from pipeline.targets.base import TargetError


def load() -> ModuleType:
    try:
        return importlib.import_module("bitlite_runtime")
    except ImportError as err:
        raise TargetError(
            f"binary (LCE) models run on bitlite's runtime, which is not available here ({err})"
        ) from None


def package_dir() -> Path:
    """The directory holding the ``bitlite_runtime`` package (to put on PYTHONPATH)."""
    return Path(load().__file__).resolve().parent.parent


def stage(arch: str, site: Path) -> Path:
    """Copy ``bitlite_runtime`` into ``site`` with its library built for ``arch``.

    ``arch`` is "aarch64" or "armhf"; the runtime's own build function does the
    cross-compiling, and says so with a clear error where it cannot.
    """
    runtime = load()
    try:
        from bitlite_runtime import build
    except ImportError as err:
        raise TargetError(f"bitlite_runtime has no build module ({err})") from None
    source = Path(runtime.__file__).resolve().parent
    dest = site / "bitlite_runtime"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    try:
        return Path(build.build_library(arch, dest))
    except Exception as err:  # the build's own failure, whatever its type, is one line here
        raise TargetError(f"cannot build bitlite's runtime for {arch}: {err}") from None

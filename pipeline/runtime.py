"""Finding and staging bitlite's own runtime (``bitlite_runtime``) for a target.

The runtime — our kernels for Larq Compute Engine's ops as a TFLite delegate — lives in
``runtime/`` (or is pip-installed); the bench only locates it on this machine and, for an
ARM target, stages a copy of the package with its library cross-built for that
architecture in ``lib/``, where the package looks for a shipped build first. Where the
runtime is missing or cannot be built, the message says so: binary models then do not
run — they never get a made-up figure.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from pipeline.errors import TargetError

SOURCE_TREE = Path(__file__).resolve().parents[1] / "runtime"


def load() -> ModuleType:
    """The ``bitlite_runtime`` module: installed, or from this checkout's runtime/."""
    try:
        return importlib.import_module("bitlite_runtime")
    except ImportError:
        pass
    try:
        return _load_source_tree()
    except ImportError as err:
        raise TargetError(
            f"binary (LCE) models run on bitlite's runtime, which is not available here ({err})"
        ) from None


def _load_source_tree() -> ModuleType:
    """Import this checkout's runtime/bitlite_runtime without putting runtime/ on sys.path."""
    init = SOURCE_TREE / "bitlite_runtime" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "bitlite_runtime", init, submodule_search_locations=[str(init.parent)]
    )
    if not init.is_file() or spec is None or spec.loader is None:
        raise ImportError(f"no bitlite_runtime package in {SOURCE_TREE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bitlite_runtime"] = module  # its own submodules import the package
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["bitlite_runtime"]
        raise
    return module


def package_dir() -> Path:
    """The directory holding the ``bitlite_runtime`` package (to put on PYTHONPATH)."""
    return Path(load().__file__).resolve().parent.parent


def stage(arch: str, site: Path) -> Path:
    """Copy ``bitlite_runtime`` into ``site`` with its library built for ``arch``.

    ``arch`` is "aarch64", "armhf" or "host". The runtime's own ``library_path`` builds
    the library (cross-compiling for ARM) only when its build is missing or older than
    the C++ sources, and names the missing compiler where it cannot; the copy goes to the
    package's ``lib/``, where an installed package looks first.
    """
    module = load()
    from bitlite_runtime import build

    try:
        library = Path(module.library_path(arch))
    except Exception as err:  # the build's own failure, whatever its type, is one line here
        first = str(err).strip().splitlines()[0]
        raise TargetError(f"cannot build bitlite's runtime for {arch}: {first}") from None
    dest = site / "bitlite_runtime"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(Path(module.__file__).resolve().parent, dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "lib"))  # fmt: skip
    (dest / "lib").mkdir()
    return Path(shutil.copy2(library, dest / "lib" / build.LIBRARY_NAME))

"""Fixtures for pipeline tests that run files on bitlite's runtime."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"


@pytest.fixture(scope="session")
def checkout_runtime() -> ModuleType:
    """``bitlite_runtime`` from this checkout's runtime/ (its library built from this
    checkout's C++ into runtime/build/host/), even where an installed copy — which may
    predate this checkout's ops — was imported first (``pipeline.export`` imports it)."""
    loaded = sys.modules.get("bitlite_runtime")
    if loaded is not None and RUNTIME_DIR not in Path(loaded.__file__).resolve().parents:
        for name in [m for m in sys.modules if m.split(".")[0] == "bitlite_runtime"]:
            del sys.modules[name]
    if str(RUNTIME_DIR) not in sys.path:
        sys.path.insert(0, str(RUNTIME_DIR))
    module = importlib.import_module("bitlite_runtime")
    assert RUNTIME_DIR in Path(module.__file__).resolve().parents, module.__file__
    return module

"""tf-keras 2.16 on Python 3.12: seeding draws ``random.randint(1, 1e9)``.

tf-keras 2.16.0 (the release that goes with TensorFlow 2.16) derives layer seeds with
``randint(1, 1e9)``; Python 3.12 refuses a float bound, so every layer built after
``tf.keras.utils.set_random_seed`` (which bitlite's training always calls) raises
``TypeError``. tf-keras 2.17 fixed it, but needs TensorFlow 2.17. Both call sites read
``random`` from ``tf_keras.src.utils.tf_utils``' globals (``set_random_seed`` makes the
generator the backend draws from), so that module gets a ``random`` whose ``randint``
takes an integral float. Nothing changes on Python 3.11, where floats were accepted.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import random
import sys
import types
from typing import Any

MODULE = "tf_keras.src.utils.tf_utils"


class IntegralRandom(random.Random):
    """``random.Random`` whose ``randint`` accepts integral floats, as before 3.12."""

    def randint(self, a: Any, b: Any) -> int:
        return super().randint(int(a), int(b))


def random_module() -> types.ModuleType:
    """A stand-in for ``random`` in tf_utils: its ``Random`` and ``randint`` take floats."""
    shim = types.ModuleType("random")
    shim.__dict__.update({k: getattr(random, k) for k in dir(random) if not k.startswith("__")})
    shared = IntegralRandom()
    shim.Random = IntegralRandom  # type: ignore[attr-defined]
    shim.randint = shared.randint  # type: ignore[attr-defined]
    return shim


class _Patcher(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Lets tf_utils load as usual, then swaps its ``random``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # once, and not for our own lookup below
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            self.inner = spec.loader
            spec.loader = self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.inner.exec_module(module)
        module.random = random_module()  # type: ignore[attr-defined]


def install(force: bool = False) -> None:
    """Patch tf_utils when it is imported (or now, if it already is), on Python 3.12+
    (``force``: on any Python, for tests)."""
    if sys.version_info < (3, 12) and not force:
        return
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        loaded.random = random_module()  # type: ignore[attr-defined]
    elif not any(isinstance(f, _Patcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _Patcher())

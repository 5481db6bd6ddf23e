"""Model builders by name: ``build(method, input_shape, num_classes) -> keras.Model``.

Each architecture module lists its builders in a module-level ``BUILDERS`` dict; the
registry discovers them by importing every module of the package (lazily: they import
TensorFlow). Nothing imports the registry back, so there is no cycle to hold apart.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from pipeline.errors import unknown_choice

Builder = Callable[..., Any]
MODELS: dict[str, Builder] = {}


def model_names() -> list[str]:
    _load_all()
    return sorted(MODELS)


def check_name(name: str) -> None:
    _load_all()
    if name not in MODELS:
        raise unknown_choice("model", name, model_names())


def build_model(name: str, method: Any, input_shape: tuple[int, ...], num_classes: int) -> Any:
    check_name(name)
    return MODELS[name](method, tuple(input_shape), num_classes)


def _load_all() -> None:
    if MODELS:
        return
    import models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"models.{info.name}")
        MODELS.update(getattr(module, "BUILDERS", {}))

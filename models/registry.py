"""Model builders by name: ``build(method, input_shape, num_classes) -> keras.Model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.errors import unknown_choice

Builder = Callable[..., Any]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        MODELS[name] = fn
        return fn

    return deco


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
    # Imported lazily: the builders import TensorFlow, the registry must not.
    from models import lenet, mlp, resnet, vgg  # noqa: F401

"""The method registry: ``--method NAME`` resolves here."""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.errors import UsageError, unknown_choice
from pipeline.methods.base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name} registered twice")
    METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    return sorted(METHODS)


def check_name(name: str) -> None:
    if name not in METHODS:
        raise unknown_choice("method", name, method_names())


def make_method(name: str, **overrides: Any) -> Method:
    """Instantiate a method; ``overrides`` that the method has no field for are ignored
    when None, and rejected otherwise (``--wbits`` makes no sense for ``bnn``)."""
    check_name(name)
    cls = METHODS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in fields:
            raise UsageError(f"method '{name}' takes no option '{key}'")
        kwargs[key] = value
    try:
        method = cls(**kwargs)
        method.check()
        return method
    except (TypeError, ValueError) as err:
        raise UsageError(f"method '{name}': {err}") from None


def describe() -> list[tuple[str, str, str]]:
    """(name, one-line summary, paper) for ``--list-methods``."""
    return [(n, METHODS[n].summary, METHODS[n].paper) for n in method_names()]

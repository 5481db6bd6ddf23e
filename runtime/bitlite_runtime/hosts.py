"""The host TFLite runtime the delegate plugs into: LiteRT, tflite-runtime or TensorFlow.

bitlite's library is a TFLite delegate over TFLite's public C structs, so it runs in
whichever Python TFLite is installed. The first importable of ``HOSTS`` is used unless
``BITLITE_HOST`` (or a ``host=`` argument) names one:

* ``litert``: ``ai_edge_litert.interpreter`` (LiteRT, TFLite's successor; the default
  dependency: wheels for Python 3.11-3.13 on x86_64 and aarch64 Linux);
* ``tflite_runtime``: ``tflite_runtime.interpreter`` (2.14: Python 3.11 only, but the
  one with armv7 wheels and older Raspberry Pi OS releases);
* ``tensorflow``: TensorFlow's ``tf.lite`` (imports all of TensorFlow: slow to start).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

HOST_ENV = "BITLITE_HOST"
HOSTS = ("litert", "tflite_runtime", "tensorflow")


class NoHostError(ImportError):
    """No TFLite runtime to run the model in (or not the one asked for)."""


@dataclass(frozen=True)
class Host:
    """One host runtime's Python API, as the delegate needs it."""

    name: str
    module: ModuleType  # has Interpreter, load_delegate and OpResolverType

    @property
    def interpreter_class(self) -> type:
        return self.module.Interpreter

    def load_delegate(self, library: str, options: dict[str, str]) -> Any:
        return self.module.load_delegate(library, options)

    @property
    def op_resolver_type(self) -> Any:
        return self.module.OpResolverType

    @property
    def version(self) -> str:
        return _VERSIONS[self.name]()


def _tensorflow_lite() -> ModuleType:
    """tf.lite with load_delegate and OpResolverType at the top, as the others have them."""
    import tensorflow as tf

    module = ModuleType("tf.lite")
    module.Interpreter = tf.lite.Interpreter
    module.load_delegate = tf.lite.experimental.load_delegate
    module.OpResolverType = tf.lite.experimental.OpResolverType
    return module


_IMPORTERS = {
    "litert": lambda: importlib.import_module("ai_edge_litert.interpreter"),
    "tflite_runtime": lambda: importlib.import_module("tflite_runtime.interpreter"),
    "tensorflow": _tensorflow_lite,
}


def _distribution_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_VERSIONS = {
    "litert": lambda: _distribution_version("ai-edge-litert"),
    "tflite_runtime": lambda: _distribution_version("tflite-runtime"),
    "tensorflow": lambda: _distribution_version("tensorflow"),
}


@cache
def _import_host(name: str) -> Host:
    try:
        return Host(name, _IMPORTERS[name]())
    except ImportError as err:
        raise NoHostError(f"host runtime {name!r} is not installed ({err})") from None


def resolve(name: str | None = None) -> Host:
    """The host runtime: `name`, else $BITLITE_HOST, else the first installed of HOSTS."""
    chosen = name or os.environ.get(HOST_ENV) or None
    if chosen is not None:
        if chosen not in HOSTS:
            raise NoHostError(f"unknown host runtime {chosen!r}; expected one of {', '.join(HOSTS)}")
        return _import_host(chosen)
    for candidate in HOSTS:
        try:
            return _import_host(candidate)
        except NoHostError:
            continue
    raise NoHostError(
        "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime, or tensorflow)"
    )


def installed() -> list[str]:
    """Every host runtime importable here, in preference order."""
    found = []
    for candidate in HOSTS:
        try:
            _import_host(candidate)
        except NoHostError:
            continue
        found.append(candidate)
    return found


def backend(name: str | None = None) -> str:
    """Which host runtime bitlite_runtime.Interpreter uses here: 'litert',
    'tflite_runtime' or 'tensorflow' (see resolve)."""
    return resolve(name).name

"""Quantization methods by name (policy); each module registers its methods on import."""

from pipeline.methods.base import Method, Position
from pipeline.methods.registry import (
    METHODS,
    check_name,
    describe,
    make_method,
    method_names,
    register,
)

# Importing a module registers its methods.
from pipeline.methods import (  # noqa: E402,F401  isort: skip
    baseline,
    binary,
    multibit,
    soft_weight_sharing,
    ternary,
)

__all__ = [
    "METHODS",
    "Method",
    "Position",
    "check_name",
    "describe",
    "make_method",
    "method_names",
    "register",
]

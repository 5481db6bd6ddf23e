"""Weight projections by name (``--quantizer``): fit a layer's levels, then round to them.

A projection is policy over the level-set math in :mod:`pipeline.quantizers`: ``fit``
reads a layer's float kernel once and returns the JSON-able parameters of its level set
(recorded in the output run), ``project`` maps a kernel onto that set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.errors import UsageError, unknown_choice
from pipeline.quantizers import po2, uniform

# Exports store these weights as int8, so more than 8 bits gains nothing, and a level
# list of 2^(bits-2) entries (po2) must stay small: --bits 40 once built 2^38 of them.
MIN_BITS, MAX_BITS = 2, 8


@dataclass(frozen=True)
class Projection:
    name: str
    summary: str
    fit: Callable[[np.ndarray, int], dict[str, Any]]
    project: Callable[[Any, dict[str, Any], int], tf.Tensor]
    bits: tuple[int, ...] | None = None  # the only bit widths it supports (None: 2..MAX_BITS)

    def check_bits(self, bits: int) -> None:
        allowed = self.bits or tuple(range(MIN_BITS, MAX_BITS + 1))
        if bits not in allowed:
            choices = ", ".join(map(str, allowed)) if self.bits else f"{MIN_BITS} to {MAX_BITS}"
            raise UsageError(f"--quantizer {self.name} takes --bits {choices}, got {bits}")


PROJECTIONS: dict[str, Projection] = {}


def register(projection: Projection) -> Projection:
    PROJECTIONS[projection.name] = projection
    return projection


def get(name: str) -> Projection:
    if name not in PROJECTIONS:
        raise unknown_choice("quantizer", name, list(PROJECTIONS))
    return PROJECTIONS[name]


def _max_abs(w: np.ndarray) -> float:
    return float(np.max(np.abs(w)))


def _po2_fit(w: np.ndarray, bits: int) -> dict[str, Any]:
    n1, n2 = po2.inq_exponents(_max_abs(w), bits)
    return {"n1": n1, "n2": n2}


register(Projection(
    "po2", "powers of two and zero, INQ's levels (arXiv:1702.03044 eqs. 2-4)",
    fit=_po2_fit,
    project=lambda w, p, bits: po2.po2_project(w, p["n1"], p["n2"]),
))  # fmt: skip

register(Projection(
    "uniform", "symmetric uniform 2^b - 1 levels, step max|W| / (2^(b-1) - 1)",
    fit=lambda w, bits: {"step": uniform.uniform_step(_max_abs(w), bits)},
    project=lambda w, p, bits: uniform.uniform_project(w, p["step"], bits),
))  # fmt: skip


def _twn_project(w: Any, params: dict[str, Any], bits: int) -> tf.Tensor:
    from pipeline.quantizers.ternary import twn_ternarize

    # TWN's Δ and α are recomputed from the weights at every projection (per tensor),
    # which is also how TWN trains: under --all-at-once they follow the float weights.
    return twn_ternarize(w, axis=None, delta_factor=params["delta_factor"])


register(Projection(
    "twn", "TWN ternary α·{-1, 0, 1}, Δ = 0.7 E|W| (arXiv:1605.04711; pipeline.quantizers.ternary)",
    fit=lambda w, bits: {"delta_factor": 0.7},
    project=_twn_project,
    bits=(2,),
))  # fmt: skip

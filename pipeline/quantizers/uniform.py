"""Symmetric uniform k-bit weight levels and their round-to-nearest projection.

``b`` bits give the ``2^b - 1`` levels ``{-L, …, -1, 0, 1, …, L}·Δ`` with ``L = 2^(b-1) - 1``
(one code of the ``2^b`` is left unused so that zero is a level and the grid is
symmetric — the "narrow range" of TensorFlow's symmetric int8 scheme). The step comes from
the layer's largest weight, ``Δ = max|W| / L``, so no weight is clipped when the levels
are fitted. A weight goes to ``clip(round(W/Δ), -L, L)·Δ``: the nearest level, rather
than the truncation toward zero that seed 004 (§6.1.2) names as the cause of its losses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf


def uniform_max_level(bits: int) -> int:
    """``L = 2^(b-1) - 1``: the largest integer level of a symmetric ``b``-bit grid."""
    if bits < 2:
        raise ValueError(f"a symmetric grid with zero needs at least 2 bits, got {bits}")
    return 2 ** (bits - 1) - 1


def uniform_step(max_abs: float, bits: int) -> float:
    """``Δ = max|W| / L``, rounded to float32 (the step the projection multiplies by)."""
    if not max_abs > 0 or not math.isfinite(max_abs):
        raise ValueError(f"max |W| must be positive and finite, got {max_abs}")
    return float(np.float32(max_abs / uniform_max_level(bits)))


def uniform_levels(step: float, bits: int) -> np.ndarray:
    """Every level, ascending, exactly as :func:`uniform_project` computes them."""
    top = uniform_max_level(bits)
    return np.arange(-top, top + 1, dtype=np.float32) * np.float32(step)


def uniform_project(w: Any, step: float, bits: int) -> tf.Tensor:
    """``clip(round(W/Δ), -L, L)·Δ``; halves round to even (``tf.round``); zero is +0.0."""
    top = float(uniform_max_level(bits))
    w = tf.convert_to_tensor(w, tf.float32)
    step32 = tf.constant(step, tf.float32)
    q = tf.clip_by_value(tf.round(w / step32), -top, top) * step32
    # round(-0.3) is -0.0: make zero one bit pattern, so projecting is idempotent bit for bit.
    return tf.where(q == 0, tf.zeros_like(q), q)

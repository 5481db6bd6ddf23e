"""Power-of-two weight levels: INQ's level set and its round-to-nearest projection.

INQ (Zhou et al., "Incremental Network Quantization", ICLR 2017, arXiv:1702.03044, §2.1)
quantizes each layer's weights to ``P = {±2^n1, …, ±2^n2, 0}`` with ``n2 <= n1``, so a
multiply becomes a shift. ``n1`` comes from the layer's largest weight ``s = max|W|``:

    n1 = floor(log2(4 s / 3))                      (eq. 2)
    n2 = n1 + 1 - 2^(b-1) / 2                      (eq. 3)

for a bit width ``b`` of which one bit encodes zero: ``2^(b-1)/2`` magnitudes, each with
two signs, plus zero. ``b = 2`` gives ternary ``{-2^n1, 0, 2^n1}``. A weight goes to the
nearest element of ``P`` (eq. 4): ``β sign(W)`` if ``(α+β)/2 <= |W| < 3β/2`` for adjacent
``α < β`` in ``P`` (zero included), else 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf


def inq_exponents(max_abs: float, bits: int) -> tuple[int, int]:
    """``(n1, n2)`` of eqs. 2–3 for a layer whose largest |weight| is ``max_abs``."""
    if bits < 2:
        raise ValueError(f"power-of-two levels need at least 2 bits (one encodes zero), got {bits}")
    if not max_abs > 0 or not math.isfinite(max_abs):
        raise ValueError(f"max |W| must be positive and finite, got {max_abs}")
    # floor(log2(x)) exactly: frexp gives x = m 2^e with 0.5 <= m < 1, so it is e - 1.
    n1 = math.frexp(4.0 * float(max_abs) / 3.0)[1] - 1
    n2 = n1 + 1 - 2 ** (bits - 1) // 2
    return n1, n2


def po2_magnitudes(n1: int, n2: int) -> np.ndarray:
    """The non-negative half of ``P``, ascending: ``[0, 2^n2, …, 2^n1]`` (float32, exact)."""
    if n2 > n1:
        raise ValueError(f"need n2 <= n1, got n1={n1}, n2={n2}")
    return np.array([0.0] + [2.0**k for k in range(n2, n1 + 1)], dtype=np.float32)


def po2_project(w: Any, n1: int, n2: int) -> tf.Tensor:
    """Round every weight to the nearest element of ``P`` (eq. 4); ties go to the larger;
    zero is +0.0.

    Eq. 4 read literally sends ``|W| >= 3·2^n1/2`` to zero. Eq. 2 puts no initial weight
    there, but weights still being retrained can grow past it; they are clamped to
    ``±2^n1`` here, the nearest level, instead of being zeroed.
    """
    w = tf.convert_to_tensor(w, tf.float32)
    mags = po2_magnitudes(n1, n2)
    # Midpoints of adjacent levels, exact in float32: 2^(n2-1) and 3·2^(k-2).
    thresholds = tf.constant((mags[:-1] + mags[1:]) / 2)
    index = tf.searchsorted(thresholds, tf.reshape(tf.abs(w), [-1]), side="right")
    magnitude = tf.reshape(tf.gather(tf.constant(mags), index), tf.shape(w))
    # Negate only non-zero levels: zero is always +0.0, so projecting is idempotent bit for bit.
    return tf.where((w < 0) & (magnitude > 0), -magnitude, magnitude)

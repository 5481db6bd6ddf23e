"""Miyashita et al.'s LogQuant and QNN's LinearQuant against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.linear import LinearQuant
from pipeline.quantizers.log import LogQuant


def value_and_grad(q, x):
    x = tf.Variable(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        y = q(x)
    return y.numpy(), tape.gradient(y, x).numpy()


def test_log2_unsigned_levels_and_fsr_clipping():
    q = LogQuant(bits=3, fsr=0, base="2", signed=False)
    # 2^3 codes: zero and the exponents FSR - 2^3 + 1 = -7 … FSR - 1 = -1.
    assert q.levels() == [0.0] + [2.0**e for e in range(-7, 0)]
    x = [0.0, 0.3, 0.75, 5.0, 0.006, 0.004, -0.3]
    # log2: -, -1.74→-2, -0.42→0 (≥ FSR: clipped to FSR-1), 2.32→2 (clipped),
    # -7.38→-7, -7.97→-8 (≤ FSR - 2^b: underflows to 0), negative → 0.
    y, g = value_and_grad(q, x)
    np.testing.assert_array_equal(y, [0, 0.25, 0.5, 0.5, 2.0**-7, 0, 0])
    np.testing.assert_array_equal(g, np.ones(7))  # straight-through


def test_log2_signed_spends_one_bit_on_the_sign():
    q = LogQuant(bits=3, fsr=0, base="2", signed=True)
    assert q.levels() == [-0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5]
    y, _ = value_and_grad(q, [-0.3, 0.05, 0.1, -4.0, 0.0])
    # log2 .05 = -4.32 → -4 < -3 (the smallest exponent): 0.
    np.testing.assert_array_equal(y, [-0.25, 0, 0.125, -0.5, 0])


def test_log_sqrt2_rounds_twice_log2():
    q = LogQuant(bits=3, fsr=0, base="sqrt2", signed=False)
    assert q.levels() == pytest.approx([0.0] + [2 ** (e / 2) for e in range(-7, 0)])
    # 2 log2|x|: 0.3 → -3.47 → -3; 0.6 → -1.47 → -1; 0.9 → -0.30 → 0 → clipped to -1;
    # 0.1 → -6.64 → -7 (kept); 0.08 → -7.29 → -7; 0.07 → -7.67 → -8 → 0.
    y, _ = value_and_grad(q, [0.3, 0.6, 0.9, 0.1, 0.08, 0.07])
    np.testing.assert_allclose(y, [2**-1.5, 2**-0.5, 2**-0.5, 2**-3.5, 2**-3.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("base", ["2", "sqrt2"])
@pytest.mark.parametrize("signed", [True, False])
def test_outputs_are_always_levels(base, signed):
    q = LogQuant(bits=4, fsr=2, base=base, signed=signed)
    rng = np.random.default_rng(1)  # log-uniform magnitudes reach every exponent
    x = (rng.choice([-1, 1], 4000) * 2.0 ** rng.uniform(-16, 3, 4000)).astype(np.float32)
    y = q(tf.constant(x)).numpy()
    levels = np.array(q.levels())
    assert np.abs(y[:, None] - levels).min(-1).max() < 1e-6 * levels.max()
    assert len(np.unique(y)) == len(levels)  # and every level is reachable


def test_log_serializes_and_rejects_unknown_base():
    q = tf.keras.layers.deserialize(tf.keras.layers.serialize(LogQuant(5, -2, "sqrt2")))
    assert (q.bits, q.fsr, q.base, q.signed) == (5, -2, "sqrt2", True)
    with pytest.raises(ValueError, match="base"):
        LogQuant(base="e")


def test_linear_quant_levels_clip_and_hard_tanh_gradient():
    q = LinearQuant(bits=2, fsr=1)
    assert q.levels() == [-1.0, -0.5, 0.0, 0.5]
    # x / 0.5 = [-2.6, -1.2, -0.4, 0.6, 1.48, 2.4] → round · 0.5 → clip [-1, 0.5]
    y, g = value_and_grad(q, [-1.3, -0.6, -0.2, 0.3, 0.74, 1.2])
    np.testing.assert_array_equal(y, [-1, -0.5, 0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 1, 0])  # 1{|x| <= 1}


def test_linear_quant_3_bits():
    q = LinearQuant(bits=3)
    y, _ = value_and_grad(q, [0.6, -0.9, 0.99])
    np.testing.assert_array_equal(y, [0.5, -1.0, 0.75])  # step 1/4, max 1 - 1/4

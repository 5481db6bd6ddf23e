"""DoReFa-Net quantizers against hand-computed values and the paper's formulas."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.dorefa import (
    DoReFaGradient,
    DoReFaWeights,
    activation_quantizer,
    quantize_gradient,
    quantize_k,
)


def value_and_grad(fn, x, upstream=None):
    x = tf.Variable(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        y = fn(x)
        loss = tf.reduce_sum(y * (upstream if upstream is not None else tf.ones_like(y)))
    return y.numpy(), tape.gradient(loss, x).numpy()


def test_quantize_k_levels_and_straight_through_gradient():
    # n = 3: round(3 r) / 3; 0.5 * 3 = 1.5 rounds half to even (2).
    y, g = value_and_grad(lambda x: quantize_k(x, 2), [0.0, 0.1, 0.2, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(y, [0, 0, 1 / 3, 2 / 3, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(g, np.ones(6))


def test_weights_k2_forward_hand_computed():
    # tanh w = [-.76159, -.19738, .04996, .29131, .96403]; / (2 · .96403) + .5 =
    # [.10500, .39763, .52591, .65109, 1]; · 3 = [.315, 1.193, 1.578, 1.953, 3]
    # → round [0, 1, 2, 2, 3] / 3 → 2q - 1:
    y, _ = value_and_grad(DoReFaWeights(2), [-1.0, -0.2, 0.05, 0.3, 2.0])
    np.testing.assert_allclose(y, [-1, -1 / 3, 1 / 3, 1 / 3, 1], atol=1e-6)


def test_weights_k2_gradient_follows_chain_rule_through_the_max():
    w = np.array([-1.0, -0.2, 0.05, 0.3, 2.0], np.float32)
    g = np.array([0.3, -1.2, 0.7, 0.4, -0.5], np.float32)
    _, grad = value_and_grad(DoReFaWeights(2), w, upstream=g)
    # q = 2 quantize(t / 2M + 1/2) - 1, t = tanh w, M = max|t| = t[4] (w[4] > 0).
    t = np.tanh(w.astype(np.float64))
    m = np.abs(t).max()
    expected = 2 * g * (1 - t**2) / (2 * m)
    expected[4] -= 2 * (1 - t[4] ** 2) * np.sum(g * t) / (2 * m**2)
    np.testing.assert_allclose(grad, expected, rtol=1e-5)
    # larq's DoReFa stops the gradient at the max: it would miss the coupling term.
    assert abs(grad[4] - 2 * g[4] * (1 - t[4] ** 2) / (2 * m)) > 1e-2


def test_weights_k1_is_mean_abs_times_sign_with_identity_gradient():
    g = np.array([0.5, -2.0, 1.0, 3.0], np.float32)
    y, grad = value_and_grad(DoReFaWeights(1), [-0.5, 0.1, 0.3, -0.1], upstream=g)
    np.testing.assert_allclose(y, [-0.25, 0.25, 0.25, -0.25], atol=1e-7)
    np.testing.assert_allclose(grad, g)


def test_weights_k32_is_identity():
    y, g = value_and_grad(DoReFaWeights(32), [-3.0, 0.2])
    np.testing.assert_array_equal(y, np.float32([-3.0, 0.2]))
    np.testing.assert_array_equal(g, [1, 1])


def test_weights_serialize():
    q = tf.keras.layers.deserialize(tf.keras.layers.serialize(DoReFaWeights(3)))
    assert isinstance(q, DoReFaWeights) and q.precision == 3 and q.mode == "weights"


def test_activation_quantizer_clips_then_quantizes():
    y, g = value_and_grad(activation_quantizer(2), [-0.5, 0.2, 0.5, 0.8, 1.5])
    np.testing.assert_allclose(y, [0, 1 / 3, 2 / 3, 2 / 3, 1], atol=1e-6)
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])
    assert activation_quantizer(32) is None


def test_gradient_quantizer_hand_computed_with_given_noise():
    # Per-sample scale: 0.4 (row 0) and 2.0 (row 1). k = 2, n = 3.
    dr = tf.constant([[0.4, -0.2, 0.1, 0.1], [-2.0, 1.0, 0.5, 0.0]])
    # Row 0: dr / 0.8 + .5 = [1, .25, .625, .625]; noise/3 = [0, 0, 0, -.1333]
    #   → ·3 = [3, .75, 1.875, 1.475] → [3, 1, 2, 1] / 3 - .5 → · 0.8
    # Row 1: dr / 4 + .5 = [0, .75, .625, .5]; noise/3 = [0, -.1, 0, .1]
    #   → ·3 = [0, 1.95, 1.875, 1.8] → [0, 2, 2, 2] / 3 - .5 → · 4
    noise = tf.constant([[0.0, 0.0, 0.0, -0.4], [0.0, -0.3, 0.0, 0.3]])
    out = quantize_gradient(dr, 2, noise=noise).numpy()
    s = 1 / 6
    np.testing.assert_allclose(out[0], 0.8 * np.array([0.5, -s, s, -s]), atol=1e-6)
    np.testing.assert_allclose(out[1], 4.0 * np.array([-0.5, s, s, s]), atol=1e-6)


def test_gradient_layer_quantizes_backward_to_per_sample_levels_and_is_unbiased():
    rng = np.random.default_rng(0)
    upstream = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    upstream[1] *= 10.0  # a different scale per sample
    layer = DoReFaGradient(3)
    x = tf.Variable(rng.normal(size=upstream.shape).astype(np.float32))
    grads = []
    for _ in range(400):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_array_equal(y.numpy(), x.numpy())  # identity forward
    grads = np.stack(grads)
    n = 2**3 - 1
    for b in range(2):
        scale = np.abs(upstream[b]).max()
        levels = 2 * scale * (np.arange(n + 1) / n - 0.5)
        dist = np.abs(grads[:, b, ..., None] - levels).min(-1)
        assert dist.max() < 1e-4 * scale  # every value is one of the 2^k levels
        assert len(np.unique(np.round(grads[:, b] / scale, 4))) > 2
        # Stochastic rounding is unbiased: the mean converges to the float gradient.
        step = 2 * scale / n
        np.testing.assert_allclose(grads[:, b].mean(0), upstream[b], atol=0.2 * step)


def test_gradient_layer_serializes():
    layer = tf.keras.layers.deserialize(tf.keras.layers.serialize(DoReFaGradient(4)))
    assert isinstance(layer, DoReFaGradient) and layer.k_bit == 4


@pytest.mark.parametrize("k", [1, 4])
def test_gradient_quantizer_of_zero_is_zero(k):
    out = quantize_gradient(tf.zeros((2, 5)), k).numpy()
    np.testing.assert_array_equal(out, np.zeros((2, 5)))

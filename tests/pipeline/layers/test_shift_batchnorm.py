"""Shift-based batch norm (BinaryNet Algorithm 3) on hand-computed tensors."""

import numpy as np
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.layers.shift_batchnorm import ShiftBatchNormalization

# One channel: x = 1, 2, 3, 6 -> μ = 3, C = -2, -1, 0, 3, AP2(C) = -2, -1, 0, 4,
# σ² = (4 + 1 + 0 + 12) / 4 = 4.25, AP2(1/sqrt(4.25)) = AP2(0.485) = 0.5, AP2(γ=0.7) = 0.5.
X = np.array([1.0, 2.0, 3.0, 6.0], np.float32).reshape(4, 1)


def _layer():
    bn = ShiftBatchNormalization(momentum=0.9, epsilon=1e-6)
    bn.build((None, 1))
    bn.gamma.assign([0.7])
    bn.beta.assign([0.25])
    return bn


def test_training_output_by_hand_and_moving_statistics():
    bn = _layer()
    y = bn(tf.constant(X), training=True).numpy().ravel()
    np.testing.assert_array_equal(y, [-2 * 0.25 + 0.25, -0.25 + 0.25, 0.25, 3 * 0.25 + 0.25])
    np.testing.assert_allclose(bn.moving_mean.numpy(), [0.3], rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [0.9 + 0.1 * 4.25], rtol=1e-6)


def test_inference_uses_moving_statistics():
    bn = _layer()
    bn.moving_mean.assign([0.3])
    bn.moving_variance.assign([1.325])  # AP2(1/sqrt(1.325)) = AP2(0.869) = 1
    y = bn(tf.constant(X), training=False).numpy().ravel()
    np.testing.assert_allclose(y, (X.ravel() - 0.3) * 0.5 + 0.25, rtol=1e-6)
    assert bn.moving_mean.numpy()[0] == np.float32(0.3)  # untouched


def test_outputs_are_exact_power_of_two_scalings_of_the_centred_input():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.5, size=(64, 4, 4, 8)).astype(np.float32)
    bn = ShiftBatchNormalization(center=False)
    bn.build(x.shape)
    bn.gamma.assign(rng.uniform(0.1, 3.0, size=8).astype(np.float32))
    y = bn(tf.constant(x), training=True).numpy()
    centred = x - x.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    ratio = (y / centred).reshape(-1, 8)
    for c in range(8):
        exponent = np.log2(np.abs(ratio[:, c]))
        # one exact power of two per channel (up to float rounding of the centring)
        np.testing.assert_allclose(exponent, np.round(exponent[0]), atol=1e-3)
    # and not the ordinary batch norm: its factor is not a power of two
    std = x.std(axis=(0, 1, 2))
    plain = bn.gamma.numpy() / np.sqrt(std**2 + 1e-4)
    assert not np.allclose(np.log2(plain), np.round(np.log2(plain)), atol=1e-3)


def test_gradients_flow_to_input_gamma_and_beta():
    bn = _layer()
    x = tf.Variable(X)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(bn(x, training=True) * tf.constant([[1.0], [-1.0], [2.0], [0.5]]))
    grads = tape.gradient(loss, [x, bn.gamma, bn.beta])
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    np.testing.assert_allclose(grads[2], [2.5])  # ∂/∂β = Σ g

"""Batch-norm re-estimation: exact input statistics, nothing else touched."""

from __future__ import annotations

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.layers.recalibrate import recalibrate_batch_norm


def _model():
    import tensorflow as tf

    inputs = tf.keras.Input((6, 6, 2))
    x = tf.keras.layers.Conv2D(4, 3)(inputs)
    x = tf.keras.layers.BatchNormalization(epsilon=1e-4)(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(3)(x)
    outputs = tf.keras.layers.BatchNormalization(epsilon=1e-4)(x)
    return tf.keras.Model(inputs, outputs)


def test_statistics_are_those_of_each_input_with_the_layers_before_re_estimated():
    rng = np.random.default_rng(0)
    model = _model()
    conv, bn1, dense, bn2 = (model.layers[i] for i in (1, 2, 5, 6))
    for v in model.weights:  # stale statistics and non-trivial γ, β, as after quantizing
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    bn1.moving_variance.assign(np.full(4, 9.0, np.float32))
    bn2.moving_variance.assign(np.full(3, 9.0, np.float32))
    trained = [v.numpy().copy() for v in model.trainable_weights]
    x = rng.normal(size=(250, 6, 6, 2)).astype(np.float32)

    assert recalibrate_batch_norm(model, x, batch_size=64) == 2  # batches do not divide 250

    # The same statistics by hand, in float64, from the layers' own weights.
    h1 = conv(x).numpy().astype(np.float64)
    m1, v1 = h1.mean(axis=(0, 1, 2)), h1.var(axis=(0, 1, 2))
    np.testing.assert_allclose(bn1.moving_mean.numpy(), m1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), v1, rtol=1e-4)
    g, b = bn1.gamma.numpy(), bn1.beta.numpy()
    a1 = np.maximum(g * (h1 - m1) / np.sqrt(v1 + 1e-4) + b, 0).reshape(len(x), -1)
    h2 = a1 @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(bn2.moving_mean.numpy(), h2.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn2.moving_variance.numpy(), h2.var(0), rtol=1e-3)
    # Inference now normalizes: each output unit has mean β and standard deviation |γ|.
    out = model(x, training=False).numpy()
    np.testing.assert_allclose(out.mean(0), bn2.beta.numpy(), atol=1e-3)
    np.testing.assert_allclose(out.std(0), np.abs(bn2.gamma.numpy()), rtol=1e-3)
    for before, after in zip(trained, model.trainable_weights, strict=True):
        assert np.array_equal(before, after.numpy())  # weights, biases, γ, β untouched

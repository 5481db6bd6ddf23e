"""Batch-norm re-estimation: the moving statistics of the network inference runs.

Training collects each batch norm's moving mean and variance under the *training*
forward pass. Where that pass differs from inference — stochastic BinaryConnect samples
its weights, INQ and the projection tools change weights after training — those
statistics do not normalize the network that is evaluated and exported. Re-estimating
them exactly on training images, in inference mode, makes them match it again.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

BN_SAMPLES = 10_000  # training images that batch-norm statistics are re-estimated on


def recalibrate_batch_norm(model: tf.keras.Model, x: np.ndarray, batch_size: int = 1000) -> int:
    """Re-estimate every batch norm's moving mean and variance on ``x``; returns how many.

    Each layer's statistics are set to the exact mean and (biased, as Keras accumulates it) variance
    of its input over ``x``, computed in inference mode with the layers before it already
    re-estimated, i.e. as the exported model will run. Only these two statistics change:
    no weight, bias, γ or β is touched. Top-level Keras ``BatchNormalization`` layers of a
    functional model only (shift-based batch norm keeps an AP2-approximated variance, which
    this exact estimate is not).
    """
    norms = [layer for layer in model.layers
             if isinstance(layer, tf.keras.layers.BatchNormalization)]  # fmt: skip
    for norm in norms:  # graph order: input side first
        probe = tf.keras.Model(model.inputs, norm.input)
        axes = [a % len(norm.input.shape) for a in np.atleast_1d(norm.axis)]
        total, total_sq, count = 0.0, 0.0, 0
        for i in range(0, len(x), batch_size):
            h = probe(x[i : i + batch_size], training=False).numpy().astype(np.float64)
            reduce = tuple(a for a in range(h.ndim) if a not in axes)
            total = total + h.sum(axis=reduce)
            total_sq = total_sq + np.square(h).sum(axis=reduce)
            count += h.size // np.prod([h.shape[a] for a in axes])
        mean = total / count
        variance = np.maximum(total_sq / count - np.square(mean), 0.0)
        norm.moving_mean.assign(mean.astype(np.float32))
        norm.moving_variance.assign(variance.astype(np.float32))
    return len(norms)

"""Helpers for method tests: a tiny model built only from a method's factories, a few
training steps, and one LCE conversion checked against Keras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipeline  # noqa: F401


def _tiny_model(method: Any):
    import tensorflow as tf

    from pipeline.methods import Position

    inputs = tf.keras.Input((12, 12, 1))
    x = method.conv2d(32, 3, Position.FIRST)(inputs)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.conv2d(32, 3, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = tf.keras.layers.Flatten()(x)
    x = method.dense(10, Position.LAST)(x)
    x = method.normalization()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(x))


def _train_and_export(name: str, tmp_path: Path, steps: int = 4) -> dict[str, Any]:
    """Train ``name`` for a few steps with its own optimizer, save and reload it, convert
    the reloaded model with LCE and compare the .tflite with Keras.

    The conversion runs in-process (``pipeline.convert`` runs the same converter in a
    child process, which costs a TensorFlow import per method: too slow for CI here)."""
    import larq_compute_engine as lce
    import tensorflow as tf

    from pipeline.export import lce_predict
    from pipeline.flatbuffer import read_model
    from pipeline.methods import make_method
    from pipeline.serialization import load_keras_model

    method = make_method(name)
    tf.keras.utils.set_random_seed(0)
    model = _tiny_model(method)
    model.compile(method.optimizer(method.learning_rate), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16 * steps, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16 * steps)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = model.trainable_weights
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, after, strict=True))
    model.save(tmp_path / "model.keras")
    restored = load_keras_model(tmp_path / "model.keras")
    flatbuffer = lce.convert_keras_model(restored)
    probe = x[:8]
    return {
        "model": restored,
        "loss": history.history["loss"],
        "changed": changed,
        "n_weights": len(before),
        "keras": model(probe, training=False).numpy(),
        "restored": restored(probe, training=False).numpy(),
        "tflite": lce_predict(flatbuffer, probe),
        "ops": read_model(flatbuffer).op_counts(),
    }


@pytest.fixture
def train_and_export(tmp_path):
    return lambda name: _train_and_export(name, tmp_path)

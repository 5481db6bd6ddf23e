"""Helpers for method tests: a tiny model built through a method's factories, a few
training steps, and a check that the LCE export computes what Keras computes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


def tiny_model(method: Any, input_shape=(12, 12, 1), num_classes: int = 4):
    """conv → pool → BN → act → conv → BN → act → dense → BN → act → dense → BN → softmax.

    Every Position appears, and the hidden convolution has a quantized input, so binary
    methods export an ``LceBconv2d``."""
    import tensorflow as tf

    from pipeline.methods import Position

    inputs = tf.keras.Input(input_shape)
    x = method.conv2d(32, 3, Position.FIRST, padding="same")(inputs)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.conv2d(32, 3, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = tf.keras.layers.Flatten()(x)
    x = method.dense(32, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.dense(num_classes, Position.LAST)(x)
    x = method.normalization()(x)
    outputs = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="session")
def tiny_data():
    """A learnable 4-class problem: the class is the image quadrant holding a bright blob."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 256)
    x = rng.uniform(-1, -0.6, (256, 12, 12, 1)).astype(np.float32)
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, r * 6 + 1 : r * 6 + 5, col * 6 + 1 : col * 6 + 5, 0] = 1.0
    return x, y.astype(np.int64)


@pytest.fixture
def train_tiny(tiny_data) -> Callable[..., Any]:
    """Build, wrap and compile a tiny model for ``method`` and fit it for a few steps;
    returns (model, history)."""

    def _train(method: Any, steps: int = 8, epochs: int = 1):
        import tensorflow as tf

        x, y = tiny_data
        tf.keras.utils.set_random_seed(0)
        model = method.wrap_model(tiny_model(method))
        model.compile(method.optimizer(0.01), "sparse_categorical_crossentropy", ["accuracy"])
        history = model.fit(x, y, batch_size=len(x) // steps, epochs=epochs, verbose=0,
                            callbacks=method.callbacks())  # fmt: skip
        return model, history

    return _train


def assert_export_matches(model: Any, x: np.ndarray, atol: float = 1e-4) -> bytes:
    """Save, reload (as ``pipeline.convert`` does) and convert with LCE, then compare LCE's
    interpreter with Keras on ``x``. In-process, like :func:`_train_and_export`: a child
    process per model costs a TensorFlow import each."""
    import tempfile

    import larq_compute_engine as lce

    from pipeline.export import lce_predict
    from pipeline.serialization import load_keras_model

    with tempfile.TemporaryDirectory(prefix="bitlite-test-") as tmp:
        model.save(Path(tmp) / "model.keras")
        flatbuffer = lce.convert_keras_model(load_keras_model(Path(tmp) / "model.keras"))
    expected = model.predict(x, verbose=0)
    got = lce_predict(flatbuffer, x)
    np.testing.assert_allclose(got, expected, atol=atol)
    return flatbuffer


@pytest.fixture
def build_tiny() -> Callable[..., Any]:
    return tiny_model


@pytest.fixture
def export_matches() -> Callable[..., bytes]:
    return assert_export_matches


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
    model = tiny_model(method, num_classes=10)
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

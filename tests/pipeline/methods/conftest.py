"""Shared by the method tests: every binary and ternary method trains a tiny model built
only from its own factories, and all of them are exported together in ONE LCE conversion
(a multi-output model), which keeps the test time within the CI budget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pipeline  # noqa: F401

BINARY = ["binaryconnect", "binaryconnect-stochastic", "bnn", "bnn-shift", "bwn", "xnor"]
TERNARY = ["twn", "ttq", "ternary-exact"]
STEPS = 4


def tiny_model(method: Any, inputs: Any):
    import tensorflow as tf

    from pipeline.methods import Position

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
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(x), name=method.name)


def _train(name: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """A few ``fit`` steps with the method's own optimizer and constraints."""
    import tensorflow as tf

    from pipeline.methods import make_method

    method = make_method(name)
    tf.keras.utils.set_random_seed(0)
    model = tiny_model(method, tf.keras.Input((12, 12, 1)))
    model.compile(method.optimizer(method.learning_rate), "sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = model.trainable_weights
    return {
        "model": model,
        "loss": history.history["loss"],
        "changed": sum(
            not np.array_equal(b, w.numpy()) for b, w in zip(before, after, strict=True)
        ),
        "n_weights": len(before),
    }


@pytest.fixture(scope="session")
def exported_methods(tmp_path_factory) -> dict[str, Any]:
    """Train each method, put the trained models side by side in one model, save and
    reload it (every custom quantizer and layer must deserialize), convert the reloaded
    model with LCE in-process and run the .tflite on a probe batch."""
    import larq_compute_engine as lce
    import tensorflow as tf

    from pipeline.export import lce_predict
    from pipeline.flatbuffer import read_model
    from pipeline.serialization import load_keras_model

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16 * STEPS, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16 * STEPS)
    trained = {name: _train(name, x, y) for name in BINARY + TERNARY}
    inputs = tf.keras.Input((12, 12, 1))
    combined = tf.keras.Model(inputs, [t["model"](inputs) for t in trained.values()])
    path = tmp_path_factory.mktemp("methods") / "all.keras"
    combined.save(path)
    restored = load_keras_model(path)
    flatbuffer = lce.convert_keras_model(restored)
    probe = x[:8]
    outputs = lce_predict(flatbuffer, probe)
    restored_outputs = restored(probe, training=False)
    for t, r in zip(trained.values(), restored_outputs, strict=True):
        t["keras"] = t["model"](probe, training=False).numpy()
        t["restored"] = np.asarray(r)
        # The converter may order outputs differently: find this method's by its values.
        t["tflite"] = [o for o in outputs if np.abs(o - t["keras"]).max() < 1e-5]
    return {"methods": trained, "ops": read_model(flatbuffer).op_counts(), "path": path}

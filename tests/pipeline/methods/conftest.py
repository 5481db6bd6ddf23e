"""Helpers for method tests: a tiny model built only from a method's factories, a few
training steps, and checks that the LCE export computes what Keras computes. The binary
and ternary methods are exported together in ONE LCE conversion (a multi-output model),
which keeps the test time within the CI budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

BINARY = ["binaryconnect", "binaryconnect-stochastic", "bnn", "bnn-shift", "bwn", "xnor"]
TERNARY = ["twn", "ttq", "ternary-exact"]
STEPS = 4


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


@pytest.fixture(scope="session")
def build_tiny(tiny_classifier) -> Callable[..., Any]:
    """``build_tiny(method, input_shape=(12, 12, 1), num_classes=4)``: the shared tiny
    classifier as a model named after the method (unique when models are combined)."""

    def tiny_model(method: Any, input_shape=(12, 12, 1), num_classes: int = 4):
        import tensorflow as tf

        inputs = tf.keras.Input(input_shape)
        outputs = tiny_classifier(method, inputs, num_classes)
        return tf.keras.Model(inputs, outputs, name=method.name)

    return tiny_model


@pytest.fixture
def train_tiny(tiny_data, build_tiny) -> Callable[..., Any]:
    """Build, wrap and compile a tiny model for ``method`` and fit it for a few steps;
    returns (model, history)."""

    def _train(method: Any, steps: int = 8, epochs: int = 1):
        import tensorflow as tf

        x, y = tiny_data
        tf.keras.utils.set_random_seed(0)
        model = method.wrap_model(build_tiny(method))
        model.compile(method.optimizer(0.01), "sparse_categorical_crossentropy", ["accuracy"])
        history = model.fit(x, y, batch_size=len(x) // steps, epochs=epochs, verbose=0,
                            callbacks=method.callbacks())  # fmt: skip
        return model, history

    return _train


def assert_export_matches(model: Any, x: np.ndarray, atol: float = 1e-4) -> bytes:
    """Save, reload (as ``pipeline.export.convert`` does) and convert with LCE, then compare LCE's
    interpreter with Keras on ``x``. In-process, like :func:`_train_and_export`: a child
    process per model costs a TensorFlow import each."""
    import tempfile

    import larq_compute_engine as lce

    from pipeline.export.exporter import lce_predict
    from pipeline.serialization import load_keras_model

    with tempfile.TemporaryDirectory(prefix="bitlite-test-") as tmp:
        model.save(Path(tmp) / "model.keras")
        flatbuffer = lce.convert_keras_model(load_keras_model(Path(tmp) / "model.keras"))
    expected = model.predict(x, verbose=0)
    got = lce_predict(flatbuffer, x)
    np.testing.assert_allclose(got, expected, atol=atol)
    return flatbuffer


@pytest.fixture
def export_matches() -> Callable[..., bytes]:
    return assert_export_matches


def _train(name: str, x: np.ndarray, y: np.ndarray, tiny_model: Callable) -> dict[str, Any]:
    """A few ``fit`` steps with the method's own optimizer and constraints."""
    import tensorflow as tf

    from pipeline.methods import make_method

    method = make_method(name)
    tf.keras.utils.set_random_seed(0)
    model = tiny_model(method, num_classes=10)
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
def exported_methods(tmp_path_factory, build_tiny) -> dict[str, Any]:
    """Train each method, put the trained models side by side in one model, save and
    reload it (every custom quantizer and layer must deserialize), convert the reloaded
    model with LCE in-process and run the .tflite on a probe batch."""
    import larq_compute_engine as lce
    import tensorflow as tf

    from pipeline.export.exporter import lce_predict
    from pipeline.serialization import load_keras_model
    from pipeline.tflite.reader import read_model

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16 * STEPS, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16 * STEPS)
    trained = {name: _train(name, x, y, build_tiny) for name in BINARY + TERNARY}
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


def assert_binary_products(model: Any, x: np.ndarray) -> dict[str, tuple[int, int]]:
    """Rewrite ``model`` for LCE (:func:`pipeline.export.keras_rewrite.prepare_for_lce`),
    check that the rewritten model computes what ``model`` computes on ``x``, and return
    ``{position: (activation planes, weight planes)}`` of the layers that became binary
    products (positions: the tiny classifier's conv1, conv2, dense1, dense2)."""
    import tensorflow as tf

    from pipeline.export.keras_rewrite import prepare_for_lce

    # Untrained BN passes a product that is exactly 0 (α × an integer sum) on to the next
    # sign / rounding, where float32 summation order alone decides its side: random BN
    # statistics move every threshold off the products' lattice, as training does.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0.3, 0.3, beta.shape),
                rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, var.shape),
            ])  # fmt: skip
    want = model(x, training=False).numpy()
    # Both plane encodings compute what Keras computes; the planes returned are the k bit
    # planes (the cost model's choice between them is tested in test_plane_encoding.py).
    for encoding in ("thermometer", "binary"):
        rewritten, plans = prepare_for_lce(model, encoding=encoding)
        np.testing.assert_allclose(rewritten(x, training=False), want, rtol=1e-5, atol=1e-5)
    names = ("conv1", "conv2", "dense1", "dense2")
    return {
        name: (p.activation_planes, p.weight_planes)
        for name, p in zip(names, plans, strict=True)
        if p.action == "planes->bconv"
    }


@pytest.fixture
def binary_products() -> Callable[..., dict[str, tuple[int, int]]]:
    return assert_binary_products

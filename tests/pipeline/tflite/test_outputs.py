"""strip_softmax and with_outputs: the file's outputs rechosen, values checked on TFLite."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.tflite.outputs import strip_softmax, with_outputs
from pipeline.tflite.reader import read_model


def _classifier(softmax: bool) -> tuple[tf.keras.Model, bytes]:
    """Dense -> ReLU -> Dense (-> softmax), large logits: softmax saturates on them."""
    tf.keras.utils.set_random_seed(0)
    x = inputs = tf.keras.Input((6,))
    x = tf.keras.layers.Dense(16, activation="relu", name="hidden")(x)
    x = tf.keras.layers.Dense(5, kernel_initializer=tf.keras.initializers.RandomNormal(0, 30),
                              name="logits")(x)  # fmt: skip
    if softmax:
        x = tf.keras.layers.Softmax()(x)
    model = tf.keras.Model(inputs, x)
    return model, tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _run(flatbuffer: bytes, x: np.ndarray) -> list[np.ndarray]:
    interp = tf.lite.Interpreter(model_content=flatbuffer)
    interp.resize_tensor_input(0, x.shape)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


X = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)


def test_stripped_softmax_outputs_the_logits():
    model, flatbuffer = _classifier(softmax=True)
    stripped = strip_softmax(flatbuffer)
    assert stripped is not None
    assert "SOFTMAX" not in read_model(stripped).op_counts()
    logits = model.get_layer("logits")(model.get_layer("hidden")(X)).numpy()
    (got,) = _run(stripped, X)
    np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-4)
    # and the untouched file still gives the probabilities
    np.testing.assert_allclose(_run(flatbuffer, X)[0], model.predict(X, verbose=0), atol=1e-6)


def test_no_softmax_means_nothing_to_strip():
    _, flatbuffer = _classifier(softmax=False)
    assert strip_softmax(flatbuffer) is None


def test_intermediate_tensors_become_outputs_in_the_order_given():
    model, flatbuffer = _classifier(softmax=True)
    m = read_model(flatbuffer)
    dense = [op.outputs[0] for op in m.ops if op.type == "FULLY_CONNECTED"]
    hidden = model.get_layer("hidden")(X).numpy()
    out = _run(with_outputs(flatbuffer, [m.outputs[0], dense[0]]), X)
    np.testing.assert_allclose(out[1], hidden, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0], model.predict(X, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="no such tensors"):
        with_outputs(flatbuffer, [len(m.tensors)])

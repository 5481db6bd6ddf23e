"""Parity on logits: Keras' softmax input found for each way a model ends in softmax."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.export.logits import LOGITS, OUTPUTS, compared, logits_model

X = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)


def _model(ending: str) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((6,))
    hidden = tf.keras.layers.Dense(8, activation="relu")(inputs)
    if ending == "dense_softmax":
        return tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(hidden))
    logits = tf.keras.layers.Dense(4, name="logits")(hidden)
    out = {
        "activation": tf.keras.layers.Activation("softmax", dtype="float32"),
        "layer": tf.keras.layers.Softmax(),
        "relu": tf.keras.layers.Activation("relu"),
    }[ending](logits)
    return tf.keras.Model(inputs, out)


@pytest.mark.parametrize("ending", ["activation", "layer", "dense_softmax"])
def test_logits_are_the_softmax_input(ending):
    model = _model(ending)
    logits, out = logits_model(model).predict(X, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), out, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out, model.predict(X, verbose=0), rtol=1e-6)
    assert not np.allclose(logits.sum(-1), 1.0)  # really the logits, not probabilities


def test_no_softmax_or_labels_compare_outputs():
    assert logits_model(_model("relu")) is None
    assert compared(_model("relu"), X, labelled=False).what == OUTPUTS
    assert compared(_model("layer"), X, labelled=True).what == OUTPUTS  # argmax of outputs
    keras = compared(_model("layer"), X, labelled=False)
    assert keras.what == LOGITS and keras.reference.shape == keras.outputs.shape == (3, 4)


def test_a_file_without_softmax_is_compared_with_the_outputs():
    """A baseline whose softmax the converter changed (or dropped) is compared with
    Keras' outputs, never its logits with the file's probabilities."""
    model = _model("layer")
    keras = compared(model, X, labelled=False)
    plain = tf.lite.TFLiteConverter.from_keras_model(_model("relu")).convert()
    run, reference, what = keras.candidate(plain)
    assert run is plain and reference is keras.outputs and what == OUTPUTS


@pytest.mark.parametrize("ending", ["activation", "layer", "dense_softmax"])
def test_the_files_logits_match_keras_logits(ending):
    from pipeline.export.exporter import tflite_predict

    model = _model(ending)
    keras = compared(model, X, labelled=False)
    run, reference, what = keras.candidate(
        tf.lite.TFLiteConverter.from_keras_model(model).convert()
    )
    assert what == LOGITS and reference is keras.reference
    np.testing.assert_allclose(tflite_predict(run, X), reference, rtol=1e-5, atol=1e-5)

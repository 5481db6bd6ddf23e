"""What parity compares on random inputs: a classifier's logits, not its probabilities.

Without labels, parity is the largest output difference relative to the largest output.
Most classifiers (larq-zoo's all) end in a softmax, which saturates on large logits: two
runtimes whose logits differ by several percent can give equal one-hot probabilities,
and a difference of 1e-28 between them says nothing. So when the model's output is a
softmax of its last layer — an ``Activation("softmax")`` or ``Softmax`` layer, or a layer
whose own activation is softmax — Keras gives the softmax's input (:func:`logits_model`)
and the .tflite file its ``SOFTMAX`` op's input (:func:`pipeline.tflite.outputs.strip_softmax`),
and those are compared. Labels (a test set) keep comparing the outputs' argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.tflite.outputs import strip_softmax

LOGITS = "logits"  # parity on the input of the final softmax
OUTPUTS = "outputs"  # parity on what the model outputs


def _is_softmax(activation: Any) -> bool:
    return getattr(activation, "__name__", "") == "softmax"


def logits_model(model: Any) -> Any | None:
    """A Keras model with ``model``'s input and two outputs, ``(logits, outputs)``, when
    its one output is a softmax over the last axis of its last layer; else None."""
    import tensorflow as tf

    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    history = outputs[0]._keras_history
    layer = history.layer
    # the input of the call that made the output (a reused layer has several)
    inputs = layer._inbound_nodes[history.node_index].input_tensors
    if isinstance(layer, tf.keras.layers.Softmax) and layer.axis in (-1, [-1]):
        return tf.keras.Model(model.inputs, [inputs, outputs[0]])
    if isinstance(layer, tf.keras.layers.Activation) and _is_softmax(layer.activation):
        return tf.keras.Model(model.inputs, [inputs, outputs[0]])
    if _is_softmax(getattr(layer, "activation", None)) and hasattr(layer, "get_config"):
        # a Dense/Conv with activation="softmax": the same layer without it gives the logits
        config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_logits"}
        linear = type(layer).from_config(config)
        logits = linear(inputs)
        linear.set_weights(layer.get_weights())
        return tf.keras.Model(model.inputs, [logits, outputs[0]])
    return None


@dataclass
class Compared:
    """Keras' side of parity: the reference each .tflite file is compared with."""

    what: str  # LOGITS or OUTPUTS
    reference: np.ndarray  # Keras' logits or outputs, as ``what`` says
    outputs: np.ndarray  # Keras' outputs (accuracies, baselines without a softmax)

    def candidate(self, flatbuffer: bytes) -> tuple[bytes, np.ndarray, str]:
        """(the file to run, the Keras array to compare its output with, which of LOGITS
        or OUTPUTS that is): the file's logits where it ends in the softmax, else its
        outputs."""
        if self.what == LOGITS:
            stripped = strip_softmax(flatbuffer)
            if stripped is not None:
                return stripped, self.reference, LOGITS
        return flatbuffer, self.outputs, OUTPUTS


def compared(model: Any, x: np.ndarray, labelled: bool) -> Compared:
    """Run Keras once on ``x``: logits and outputs when parity can use logits (no labels
    and a final softmax), the outputs alone otherwise."""
    both = None if labelled else logits_model(model)
    if both is None:
        out = np.asarray(model.predict(x, batch_size=256, verbose=0))
        return Compared(OUTPUTS, out, out)
    logits, out = both.predict(x, batch_size=256, verbose=0)
    return Compared(LOGITS, np.asarray(logits), np.asarray(out))

"""Full-precision and 8-bit integer baselines."""

from __future__ import annotations

import contextlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf

from pipeline.methods.base import Method, Position
from pipeline.methods.registry import register


@register
@dataclass
class Float(Method):
    """Full-precision float32 training: the reference every method is compared with."""

    name = "float"
    summary = "full-precision float32 baseline"
    paper = ""


@register
@dataclass
class Int8QAT(Method):
    """8-bit integer quantization-aware training with the TF Model Optimization Toolkit
    (``tfmot.quantization.keras.quantize_model``), the scheme of Jacob et al., CVPR 2018
    (arXiv:1712.05877): fake-quantized int8 weights (per output channel for convolutions)
    and int8 activations with learned ranges, float gradients through the
    fake-quantization (straight-through inside the range).

    TF-MOT only knows Keras' own layers, so the factories build plain ``Conv2D`` and
    ``Dense`` (no larq quantizer); ``wrap_model`` then annotates and quantizes the whole
    float model — every layer, first and last included, as TF-MOT's default does. The
    export is the full-integer TFLite model the converter makes of the fake-quant graph.
    Adam + cosine decay, as the float baseline it is compared with.
    """

    name = "int8-qat"
    summary = "8-bit integer QAT with TF-MOT quantize_model (baseline)"
    paper = "Jacob et al. 2018, arXiv:1712.05877 (TF Model Optimization Toolkit)"

    def bits(self) -> dict[str, int]:
        return {"w": 8, "a": 8, "g": 32}

    def conv2d(self, filters: int, kernel_size: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)
        return tf.keras.layers.Conv2D(filters, kernel_size, **kwargs)

    def dense(self, units: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)
        return tf.keras.layers.Dense(units, **kwargs)

    def wrap_model(self, model: tf.keras.Model) -> tf.keras.Model:
        import tensorflow_model_optimization as tfmot
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_configs as configs,
        )

        qk = tfmot.quantization.keras
        standalone = {layer.name for layer in _standalone_batch_norms(model)}

        def annotate(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
            # TF-MOT folds a batch norm into the convolution or dense layer right before
            # it and refuses any other; one that follows a pooling layer (LeNet) is an
            # int8 op of its own: its output is quantized like every other layer's.
            if layer.name in standalone:
                return qk.quantize_annotate_layer(layer, configs.Default8BitOutputQuantizeConfig())
            return qk.quantize_annotate_layer(layer) if _quantizable(layer) else layer

        annotated = tf.keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        with qk.quantize_scope():
            return qk.quantize_apply(annotated)


def _standalone_batch_norms(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    folded = (tf.keras.layers.Conv2D, tf.keras.layers.Dense, tf.keras.layers.DepthwiseConv2D)
    return [
        layer
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.BatchNormalization)
        and not isinstance(layer._inbound_nodes[0].inbound_layers, folded)
    ]


def _quantizable(layer: tf.keras.layers.Layer) -> bool:
    return not isinstance(layer, tf.keras.layers.InputLayer)


def load_scope(path: Path) -> contextlib.AbstractContextManager:
    """The custom-object scope a saved model needs. TF-MOT's wrappers are not registered
    with Keras, so an int8-qat model loads only inside ``quantize_scope``, with the
    build-order fixes of :func:`_tfmot_load_fixes`. TF-MOT is imported only for such
    models (it costs seconds)."""
    try:
        with zipfile.ZipFile(path) as archive:
            needs_tfmot = b"QuantizeWrapper" in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        needs_tfmot = False  # not a .keras archive: let Keras report what is wrong
    if not needs_tfmot:
        return contextlib.nullcontext()
    import tensorflow_model_optimization as tfmot

    stack = contextlib.ExitStack()
    stack.enter_context(tfmot.quantization.keras.quantize_scope())
    # Entered last, so these win over quantize_scope's classes of the same name.
    stack.enter_context(tf.keras.utils.custom_object_scope(_tfmot_load_fixes()))
    return stack


def _tfmot_load_fixes() -> dict[str, type]:
    """TF-MOT 0.8.1 models do not reload from the ``.keras`` format (its open PR
    tensorflow/model-optimization#1123): ``QuantizeLayer.build`` never sets ``built``, so
    Keras builds it twice and finds 5 variables where 3 were saved; and
    ``QuantizeWrapperV2.build`` collects the wrapped layer's weights *before* building it,
    so a freshly deserialized wrapper lists its variables in another order than the one
    that was saved. Same-named subclasses that build in the right order fix both; they are
    used for loading only (saving writes the same class names)."""
    from tensorflow_model_optimization.python.core.quantization.keras import (
        quantize_layer,
        quantize_wrapper,
    )

    class QuantizeLayer(quantize_layer.QuantizeLayer):
        def build(self, input_shape):
            super().build(input_shape)
            self.built = True

    class QuantizeWrapperV2(quantize_wrapper.QuantizeWrapperV2):
        def build(self, input_shape):
            if not self.layer.built:
                self.layer.build(input_shape)
            super().build(input_shape)

    return {"QuantizeLayer": QuantizeLayer, "QuantizeWrapperV2": QuantizeWrapperV2}

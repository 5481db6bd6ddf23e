"""Layer helpers shared by the larger architectures (VGG, ResNet), laid out for LCE.

Larq Compute Engine's model-optimization guide (docs.larq.dev/compute-engine/
model_optimization_guide) asks for three things a model — not a method — decides:

- 'same-one' padding (``pad_values=1.0``) for convolutions whose input is binarized: zero
  cannot be represented in a bitpacked tensor, so 'same-zero' needs an edge correction
  and blocks op fusion. A convolution with a real-valued input keeps zero padding (padding
  an image or a ReLU output with ones would change the function, not just its speed).
- dense layers as convolutions (the first over the whole feature map, then 1×1): LCE has no
  optimized binary dense op. The parameter count is unchanged.
- channel counts that are multiples of 32 (bitpacking words); the seed's tables already
  satisfy this, so no architecture here deviates from its paper for that reason.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from pipeline.methods import Method, Position


def binarized_input(method: Method, position: Position) -> bool:
    """Whether this layer's input is 1-bit (then LCE wants 'same-one' padding)."""
    return position is not Position.FIRST and method.quantizes(position) and method.bits()["a"] == 1


def conv(method: Method, filters: int, kernel_size: int, position: Position,
         strides: int = 1, **kwargs: Any) -> tf.keras.layers.Layer:  # fmt: skip
    """A 'same'-padded convolution from ``method``, padded with ones when LCE benefits."""
    pad = 1.0 if binarized_input(method, position) else 0.0
    return method.conv2d(filters, kernel_size, position, strides=strides, padding="same",
                         pad_values=pad, **kwargs)  # fmt: skip


def dense(method: Method, units: int, position: Position, x: tf.Tensor) -> tf.Tensor:
    """A fully connected layer on a feature map ``x`` (N, H, W, C), as a convolution.

    Its kernel covers the whole map ('valid'), so it is a dense layer over the (H, W, C)-
    ordered features with the same weights, and its output is the 1×1 pixel the next
    dense layer (a 1×1 convolution) reads. No reshape: Keras's ``Reshape`` traces an
    unknown batch size into a SHAPE/PACK chain, and TFLite's XNNPACK then delegates none
    of the float baseline (measured on VGG-8: no DELEGATE node)."""
    return method.conv2d(units, tuple(x.shape[1:3]), position, padding="valid")(x)


def logits_to_probabilities(method: Method, x: tf.Tensor) -> tf.Tensor:
    """Batch norm on the class scores (as BinaryNet does), flatten, softmax."""
    x = method.normalization()(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.layers.Softmax()(x)

"""Binary networks: BinaryNet/BNN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from pipeline.methods.base import Method, Position
from pipeline.methods.registry import register


@register
@dataclass
class BNN(Method):
    """BinaryNet (Hubara et al., NIPS 2016, arXiv:1602.02830).

    Weights and activations are ``sign(x)`` in the forward pass; the backward pass is the
    hard-tanh straight-through estimator ``g_in = g * 1{|x| <= 1}`` (eq. 4 of the paper),
    for which larq's ``ste_sign`` is exact. Latent weights are clipped to [-1, 1] after
    each update. The first layer's input (the image) stays full precision, and there is
    no activation function: the sign in the next layer's input quantizer is the
    non-linearity, which is what LCE fuses into ``LceBconv2d``.
    """

    name = "bnn"
    summary = "BinaryNet: sign weights and activations, hard-tanh STE"
    paper = "Hubara et al. 2016, arXiv:1602.02830"

    def bits(self) -> dict[str, int]:
        return {"w": 1, "a": 1, "g": 32}

    def kernel_quantizer(self, position: Position) -> Any:
        return "ste_sign"

    def input_quantizer(self, position: Position) -> Any:
        return "ste_sign"

    def kernel_constraint(self, position: Position) -> Any:
        return "weight_clip"

    def normalization(self) -> tf.keras.layers.Layer:
        # The scale is redundant before a sign(); larq's examples drop it too.
        return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4, scale=False)

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        return x

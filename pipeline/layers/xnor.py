"""XNOR-Net's binary layers with the activation scale ``K`` (Rastegari et al., ECCV 2016,
arXiv:1603.05279, §3.2)."""

from __future__ import annotations

from typing import Any

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

register = tf.keras.utils.register_keras_serializable(package="bitlite")


def _check_linear(layer: tf.keras.layers.Layer) -> None:
    # K multiplies the binary product itself (eq. 11): a bias or activation before it
    # would be scaled too.
    if layer.use_bias or layer.activation is not tf.keras.activations.linear:
        raise ValueError(f"{type(layer).__name__} needs use_bias=False and no activation")


@register
class XnorConv2D(lq.layers.QuantConv2D):
    r"""``I * W ≈ (sign(I) ⊛ sign(W)) ⊙ K α`` — XNOR-Net eq. (11).

    ``A = Σ_c |I_{:,:,c}| / c`` (mean over input channels) and ``K = A * k`` with ``k`` the
    ``w×h`` box filter of value ``1/(wh)``, convolved with the layer's own strides, padding
    and dilation, so ``K_ij`` is the ``β`` (eq. 10) of the input patch under output ``ij``.
    ``sign(I)`` and ``α sign(W)`` are the layer's input and kernel quantizers. ``K`` is an
    ordinary differentiable function of ``I``; its gradient is taken as is.
    """

    def build(self, input_shape: Any) -> None:
        _check_linear(self)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return super().call(inputs) * self._scale(inputs)

    def _scale(self, inputs: tf.Tensor) -> tf.Tensor:
        a = tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
        kh, kw = self.kernel_size
        box = tf.fill([kh, kw, 1, 1], 1.0 / (kh * kw))
        padding = "SAME" if self.padding == "same" else "VALID"
        return tf.nn.conv2d(
            a, box, strides=self.strides, padding=padding, dilations=self.dilation_rate
        )


@register
class XnorDense(lq.layers.QuantDense):
    r"""``X^T W ≈ β α (sign(X)^T sign(W))`` with ``β = ||X||_ℓ1 / n`` per sample —
    XNOR-Net eq. (7)-(10) for a fully connected layer (``n`` input features)."""

    def build(self, input_shape: Any) -> None:
        _check_linear(self)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return super().call(inputs) * tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)

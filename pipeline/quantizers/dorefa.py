"""DoReFa-Net quantizers: k-bit weights, activations and gradients.

Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks with Low
Bitwidth Gradients", arXiv:1606.06160. Every quantizer is built on the paper's

    quantize_k(r) = round((2^k - 1) r) / (2^k - 1),   r in [0, 1]            (§2.1)

whose backward pass is the straight-through estimator dc/dr = dc/dq. ``round`` is
TensorFlow's (half to even), as in the authors' tensorpack code.

Larq's ``DoReFa(mode="activations")`` is exactly the paper's activation quantizer and is
reused as is. Its ``mode="weights"`` stops the gradient through ``max|tanh W|``; the paper
(and tensorpack's ``fw``) differentiate through it by the chain rule, so
:class:`DoReFaWeights` differentiates through the maximum, and also implements the
paper's k = 1 (``E|W| sign W``) and k = 32 (identity) cases, which larq's class lacks.
"""

from __future__ import annotations

from typing import Any

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

FLOAT_BITS = 32  # a bit width of 32 means "not quantized", as in the paper's tables


def quantize_k(x: tf.Tensor, k: int) -> tf.Tensor:
    """``round((2^k - 1) x) / (2^k - 1)`` with the straight-through gradient (§2.1)."""

    @tf.custom_gradient
    def _quantize(x):
        n = float(2**k - 1)
        return tf.round(x * n) / n, lambda dy: dy

    return _quantize(x)


@tf.custom_gradient
def _scaled_sign(x: tf.Tensor):
    """``E|x| sign(x)`` (sign(0) = +1, so the output is binary); identity gradient."""
    scale = tf.reduce_mean(tf.abs(x))
    return scale * tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x)), lambda dy: dy


@lq.utils.register_keras_custom_object
class DoReFaWeights(lq.quantizers.DoReFa):
    r"""DoReFa-Net weight quantizer (§2.2 of arXiv:1606.06160).

    \\[
    r_o = \begin{cases}
      E(|r_i|)\,\mathrm{sign}(r_i) & k = 1 \\
      2\,\mathrm{quantize}_k\!\left(\frac{\tanh r_i}{2\max|\tanh r_i|} + \frac12\right) - 1
        & 1 < k < 32 \\
      r_i & k = 32
    \end{cases}
    \\]

    Backward: straight through ``quantize_k`` and ``sign``; for k > 1 the chain rule runs
    through ``tanh`` *and* the maximum (which couples every weight to the largest one), as
    the paper writes the forward pass and tensorpack differentiates it. For k = 1 the
    paper's backward pass is ``dc/dr_i = dc/dr_o`` (tensorpack: ``E · sign_ste(r / E)``
    with ``E`` held constant). The maximum and the mean run over the whole tensor.
    """

    def __init__(self, k_bit: int = 2, **kwargs: Any):
        kwargs.pop("mode", None)  # always weights; get_config of the parent writes it
        super().__init__(k_bit=k_bit, mode="weights", **kwargs)

    def weight_preprocess(self, inputs: tf.Tensor) -> tf.Tensor:
        limited = tf.math.tanh(inputs)
        # No stop_gradient (larq has one): the paper's f_w is differentiated whole.
        return tf.math.divide_no_nan(limited, 2.0 * tf.reduce_max(tf.abs(limited))) + 0.5

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.precision >= FLOAT_BITS:
            return inputs
        if self.precision == 1:
            return _scaled_sign(inputs)
        return 2.0 * quantize_k(self.weight_preprocess(inputs), self.precision) - 1.0


def activation_quantizer(k_bit: int) -> Any:
    """The paper's ``f_a^k(r) = quantize_k(r)`` on the bounded activation ``clip(r, 0, 1)``
    (§2.3): larq's ``DoReFa(mode="activations")`` exactly; gradient 1 inside [0, 1], 0
    outside. None when ``k_bit`` is 32 (the clip is then the whole activation)."""
    if k_bit >= FLOAT_BITS:
        return None
    return lq.quantizers.DoReFa(k_bit=k_bit, mode="activations")


def quantize_gradient(dr: tf.Tensor, k: int, noise: tf.Tensor | None = None) -> tf.Tensor:
    r"""The paper's gradient quantizer (§2.4):

    \\[
    \tilde f_\gamma^k(dr) = 2\max_0(|dr|)\left[\mathrm{quantize}_k\!\left(
        \frac{dr}{2\max_0(|dr|)} + \frac12 + N(k)\right) - \frac12\right],
    \quad N(k) = \frac{\sigma}{2^k - 1},\ \sigma \sim U(-\tfrac12, \tfrac12)
    \\]

    ``max_0`` is taken per sample (over every axis but the batch axis). The noise makes
    the rounding stochastic and the quantizer unbiased. As in tensorpack the noisy value
    is clipped to [0, 1] first; it can only leave that range by at most half a level, so
    the clip changes nothing but ties. ``noise`` (σ, same shape as ``dr``) is for tests.
    """
    axes = list(range(1, dr.shape.rank))
    scale = tf.reduce_max(tf.abs(dr), axis=axes, keepdims=True) if axes else tf.abs(dr)
    if noise is None:
        noise = tf.random.uniform(tf.shape(dr), -0.5, 0.5, dtype=dr.dtype)
    n = float(2**k - 1)
    x = tf.math.divide_no_nan(dr, 2.0 * scale) + 0.5 + noise / n
    x = tf.clip_by_value(x, 0.0, 1.0)
    return 2.0 * scale * (tf.round(x * n) / n - 0.5)


@tf.keras.utils.register_keras_serializable(package="bitlite")
class DoReFaGradient(tf.keras.layers.Layer):
    """Identity forward; quantizes the gradient that flows back through it to ``k_bit``
    bits with :func:`quantize_gradient`. DoReFa puts it on each layer's output, before
    batch norm (tensorpack: ``Conv2D → fg → BatchNorm → activate``)."""

    def __init__(self, k_bit: int = 6, **kwargs: Any):
        super().__init__(**kwargs)
        self.k_bit = k_bit

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        k = self.k_bit

        @tf.custom_gradient
        def _identity(x):
            return tf.identity(x), lambda dy: quantize_gradient(dy, k)

        return _identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "k_bit": self.k_bit}

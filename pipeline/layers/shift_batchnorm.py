"""Shift-based batch normalization (BinaryNet, Hubara et al., NIPS 2016, arXiv:1602.02830)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.binary import ap2_ste

smart_cond = tf.__internal__.smart_cond.smart_cond


@tf.keras.utils.register_keras_serializable(package="bitlite")
class ShiftBatchNormalization(tf.keras.layers.Layer):
    r"""Batch norm whose multiplications are binary shifts — BinaryNet Algorithm 3.

    Per channel (last axis), over a mini-batch ``B``, with
    ``AP2(x) = sign(x) 2^round(log2|x|)`` (:func:`pipeline.quantizers.binary.ap2`):

    \\[ \mu_B = \tfrac{1}{m}\sum x_i,\quad C(x_i) = x_i - \mu_B,\quad
        \sigma_B^2 = \tfrac{1}{m}\sum C(x_i)\, \mathrm{AP2}(C(x_i)), \\]
    \\[ \hat x_i = C(x_i)\, \mathrm{AP2}\big((\sigma_B^2 + \epsilon)^{-1/2}\big),\quad
        y_i = \mathrm{AP2}(\gamma)\, \hat x_i + \beta. \\]

    Each product by an ``AP2`` value is a shift, so the output is the centred input times an
    exact power of two per channel, plus ``β``. (Algorithm 3's last line is titled "scale
    and shift" but omits ``+ β``; we keep the shift, as the standard transform has it.)
    At inference the moving mean and the moving *shift-approximated* variance replace the
    batch statistics. Backward: AP2 is piecewise constant, so, as for sign, its gradient is
    taken straight through (the paper gives no other); the rest is exact.
    """

    def __init__(
        self,
        momentum: float = 0.9,
        epsilon: float = 1e-4,
        center: bool = True,
        scale: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(channels,), initializer="ones", trainable=False
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        if training is None:
            training = tf.keras.backend.learning_phase()
        mean, variance = smart_cond(
            training,
            lambda: self._batch_statistics(inputs),
            lambda: (self.moving_mean + 0.0, self.moving_variance + 0.0),
        )
        outputs = (inputs - mean) * ap2_ste(tf.math.rsqrt(variance + self.epsilon))
        if self.scale:
            outputs = outputs * ap2_ste(self.gamma)
        if self.center:
            outputs = outputs + self.beta
        return outputs

    def _batch_statistics(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        axes = list(range(len(inputs.shape) - 1))
        mean = tf.reduce_mean(inputs, axis=axes)
        centred = inputs - mean
        variance = tf.reduce_mean(centred * ap2_ste(centred), axis=axes)
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * tf.stop_gradient(mean))
        self.moving_variance.assign(
            m * self.moving_variance + (1.0 - m) * tf.stop_gradient(variance)
        )
        return mean, variance

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }

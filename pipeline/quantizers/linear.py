"""Uniform (fixed-point) quantization as QNN uses it for multi-bit weights and activations.

Hubara et al., "Quantized Neural Networks: Training Neural Networks with Low Precision
Weights and Activations", arXiv:1609.07061, take Miyashita et al.'s (arXiv:1603.01025,
eq. 2) linear quantizer for more than one bit.
"""

from __future__ import annotations

from typing import Any

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


@lq.utils.register_keras_custom_object
class LinearQuant(lq.quantizers.Quantizer):
    r"""``LinearQuant(x, b, FSR) = Clip(Round(x / step) · step, minV, maxV)``,
    ``step = 2^(FSR - b)`` (Miyashita et al. eq. 2; QNN §3 of arXiv:1609.07061).

    The 2^b codes of a b-bit two's-complement fixed-point number: ``minV = -2^(FSR-1)``,
    ``maxV = 2^(FSR-1) - step``. With the default FSR = 1 the levels are ``{-1, …,
    1 - 2^(1-b)}`` — the range of BinaryNet's clipped weights and hard-tanh activations.

    Backward: QNN's straight-through estimator ``g_r = g_q · 1{|r| <= 2^(FSR-1)}``
    (BinaryNet's hard-tanh STE, eq. 4 of arXiv:1602.02830, which QNN keeps for k bits):
    gradients pass inside the representable range and are cancelled outside it.
    """

    precision = None

    def __init__(self, bits: int = 2, fsr: int = 1, **kwargs: Any):
        if bits < 2:
            raise ValueError("LinearQuant needs at least 2 bits (1 bit is sign: ste_sign)")
        self.precision = bits
        self.bits, self.fsr = bits, fsr
        super().__init__(**kwargs)

    @property
    def step(self) -> float:
        return 2.0 ** (self.fsr - self.bits)

    def levels(self) -> list[float]:
        lo = -(2.0 ** (self.fsr - 1))
        return [lo + i * self.step for i in range(2**self.bits)]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        step, bound = self.step, 2.0 ** (self.fsr - 1)

        @tf.custom_gradient
        def _linearquant(x):
            q = tf.clip_by_value(tf.round(x / step) * step, -bound, bound - step)

            def grad(dy):
                return tf.where(tf.abs(x) <= bound, dy, tf.zeros_like(dy))

            return q, grad

        return _linearquant(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bits": self.bits, "fsr": self.fsr}

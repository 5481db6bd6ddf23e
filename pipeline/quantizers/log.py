"""Logarithmic quantization (Miyashita, Lee & Murmann, arXiv:1603.01025).

Values are stored as a power of the base (2 or √2) in a window of exponents that ends at
the full-scale range FSR: a multiply becomes a shift, and the non-uniform levels follow
the roughly log-normal distribution of trained weights and activations.
"""

from __future__ import annotations

import math
from typing import Any

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

BASES = {"2": 1, "sqrt2": 2}  # base -> exponent steps per octave (log_base x = s · log2 x)


@lq.utils.register_keras_custom_object
class LogQuant(lq.quantizers.Quantizer):
    r"""Miyashita et al.'s LogQuant (§3, eq. 3 of arXiv:1603.01025):

    \\[
    \mathrm{LogQuant}(x, b, \mathrm{FSR}) = \begin{cases} 0 & x = 0 \\
        \mathrm{sign}(x)\, \beta^{\tilde x} & \text{otherwise} \end{cases},\quad
    \tilde x = \mathrm{Clip}(\mathrm{Round}(\log_\beta |x|),\ \mathrm{FSR} - 2^{b},\
        \mathrm{FSR})
    \\]

    with the paper's ``Clip(x, min, max) = 0 if x <= min, max - 1 if x >= max, x
    otherwise``: of the 2^b codes one is zero (everything at or below the window
    underflows to 0) and 2^b - 1 are the exponents ``FSR - 2^b + 1 … FSR - 1``; anything
    larger saturates at ``β^(FSR-1)``. Base β = 2, or β = √2 (the paper's finer
    "log√2" variant, ``Round(2 log2|x|)``); FSR is in exponent steps of β.

    Activations (after ReLU, ``signed=False``) use all ``b`` bits for the magnitude.
    Weights (``signed=True``) spend one of the ``b`` bits on the sign, so the magnitude
    code has ``b - 1`` bits and the window is ``FSR - 2^(b-1) … FSR - 1``.

    Backward: the straight-through estimator ``dc/dx = dc/dq`` — the paper trains with the
    quantized values in the forward pass and full-precision gradient updates to the float
    copies (§5); the rounding has no useful derivative of its own.
    """

    precision = None

    def __init__(self, bits: int = 4, fsr: int = 0, base: str = "2", signed: bool = True,
                 **kwargs: Any):  # fmt: skip
        if base not in BASES:
            raise ValueError(f"log base must be one of {sorted(BASES)}, got {base!r}")
        if bits < (2 if signed else 1):
            raise ValueError(f"LogQuant needs at least {2 if signed else 1} bits, got {bits}")
        self.precision = bits
        self.bits, self.fsr, self.base, self.signed = bits, fsr, base, signed
        super().__init__(**kwargs)

    def levels(self) -> list[float]:
        """Every value the quantizer can output, ascending (for tests and reports)."""
        s = BASES[self.base]
        mags = [2.0 ** (e / s) for e in range(self.min_exponent(), self.fsr)]
        return sorted({0.0, *mags, *([-m for m in mags] if self.signed else [])})

    def min_exponent(self) -> int:
        """The smallest exponent that does not underflow to zero."""
        codes = 2 ** (self.bits - 1 if self.signed else self.bits)
        return self.fsr - codes + 1

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        s = float(BASES[self.base])

        @tf.custom_gradient
        def _logquant(x):
            magnitude = tf.abs(x)
            exponent = tf.round(s * tf.math.log(magnitude) / math.log(2.0))
            exponent = tf.minimum(exponent, self.fsr - 1.0)
            q = tf.pow(2.0, exponent / s)
            keep = exponent >= self.min_exponent()  # also False for x = 0 (log = -inf)
            q = tf.where(keep, q, tf.zeros_like(q))
            # Weights keep their sign; activations are ReLU outputs, nothing is negative.
            q = tf.sign(x) * q if self.signed else tf.where(x > 0, q, tf.zeros_like(q))
            return q, lambda dy: dy

        return _logquant(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bits": self.bits, "fsr": self.fsr,
                "base": self.base, "signed": self.signed}  # fmt: skip

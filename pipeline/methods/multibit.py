"""Multi-bit methods: DoReFa-Net, logarithmic quantization (Miyashita et al.) and QNN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import larq as lq
import tensorflow as tf

from pipeline.methods.base import Method, Position
from pipeline.methods.registry import register
from pipeline.quantizers.dorefa import (
    FLOAT_BITS,
    DoReFaGradient,
    DoReFaWeights,
    activation_quantizer,
)
from pipeline.quantizers.linear import LinearQuant
from pipeline.quantizers.log import BASES, LogQuant


class Then:
    """A layer followed by another, called as one (what a factory returns when a method
    puts something right after a layer, such as DoReFa's gradient quantizer)."""

    def __init__(self, layer: tf.keras.layers.Layer, after: tf.keras.layers.Layer):
        self.layer, self.after = layer, after

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.after(self.layer(x))


def _check_bits(method: str, **bits: int) -> None:
    for name, value in bits.items():
        if not 1 <= value <= FLOAT_BITS:
            raise ValueError(f"{name} must be between 1 and {FLOAT_BITS} ({method}), got {value}")


@register
@dataclass
class DoReFa(Method):
    """DoReFa-Net (Zhou et al., arXiv:1606.06160): k-bit weights, activations and gradients.

    Weights: :class:`~pipeline.quantizers.dorefa.DoReFaWeights` (§2.2). Activations: the
    bounded non-linearity ``clip(x, 0, 1)`` after batch norm, then ``quantize_k`` at the
    input of the next layer (§2.3). Gradients: the output of each quantized convolution or
    dense layer goes through :class:`~pipeline.quantizers.dorefa.DoReFaGradient` (§2.4,
    stochastic ``quantize_k`` with uniform noise), so layer → fg → BN → activation as in
    the authors' tensorpack code. 32 bits switches a quantizer off.

    Layer policy (paper default, §2.7 and tensorpack): the first and the last layer keep
    float weights and unquantized gradients; the *input* of the last layer is still a
    k-bit activation. Defaults W1 A2 G6 are the abstract's AlexNet configuration; Adam
    with ε = 1e-5 as in tensorpack's examples (its step decay is replaced by cosine).
    """

    name = "dorefa"
    summary = "DoReFa-Net: k-bit weights, activations and (stochastic) gradients"
    paper = "Zhou et al. 2016, arXiv:1606.06160"

    wbits: int = 1
    abits: int = 2
    gbits: int = 6
    quantize_first: bool = False
    quantize_last: bool = False

    def __post_init__(self) -> None:
        _check_bits(self.name, wbits=self.wbits, abits=self.abits, gbits=self.gbits)

    def bits(self) -> dict[str, int]:
        return {"w": self.wbits, "a": self.abits, "g": self.gbits}

    def kernel_quantizer(self, position: Position) -> Any:
        return DoReFaWeights(self.wbits) if self.wbits < FLOAT_BITS else None

    def input_quantizer(self, position: Position) -> Any:
        return activation_quantizer(self.abits)

    def _kwargs(self, position: Position) -> dict[str, Any]:
        # Unlike the base policy, a float last layer still reads k-bit activations.
        kwargs: dict[str, Any] = {}
        if self.quantizes(position):
            kwargs["kernel_quantizer"] = self.kernel_quantizer(position)
        if position is not Position.FIRST:
            kwargs["input_quantizer"] = self.input_quantizer(position)
        return kwargs

    def _with_gradient_quantizer(self, layer: Any, position: Position) -> Any:
        if self.gbits >= FLOAT_BITS or not self.quantizes(position):
            return layer
        return Then(layer, DoReFaGradient(self.gbits))

    def conv2d(self, filters: int, kernel_size: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)
        layer = lq.layers.QuantConv2D(filters, kernel_size, **self._kwargs(position), **kwargs)
        return self._with_gradient_quantizer(layer, position)

    def dense(self, units: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)
        layer = lq.layers.QuantDense(units, **self._kwargs(position), **kwargs)
        return self._with_gradient_quantizer(layer, position)

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        return tf.keras.layers.ReLU(max_value=1.0)(x)  # clip(x, 0, 1)

    def optimizer(self, learning_rate: Any) -> tf.keras.optimizers.Optimizer:
        if self.optimizer_name == "adam":
            return tf.keras.optimizers.Adam(learning_rate, epsilon=1e-5)
        return super().optimizer(learning_rate)


# FSR defaults (in exponent steps of the base) that cover the weights of a batch-normalized
# network (|w| ≈ 0.005 … 0.25) and its ReLU activations (≈ 0.01 … 2) with 4 bits.
LOG_FSR_DEFAULTS = {"2": (-1, 2), "sqrt2": (-4, 3)}


@register
@dataclass
class Log(Method):
    """Logarithmic quantization of weights and activations (Miyashita et al.,
    arXiv:1603.01025): :class:`~pipeline.quantizers.log.LogQuant` on every layer's
    weights (sign + log magnitude) and on every layer's input after ReLU (the image is
    never quantized). ``base`` is ``"2"`` or ``"sqrt2"``; ``wfsr``/``afsr`` are the
    full-scale ranges (largest exponent + 1) of weights and activations, in exponent steps
    of the base, defaulting to :data:`LOG_FSR_DEFAULTS`. The paper quantizes all layers;
    ``quantize_first``/``quantize_last`` can keep the ends in float. Adam + cosine decay.
    """

    name = "log"
    summary = "logarithmic (power-of-2 or power-of-√2) weights and activations"
    paper = "Miyashita et al. 2016, arXiv:1603.01025"

    wbits: int = 4
    abits: int = 4
    base: str = "2"
    wfsr: int | None = None
    afsr: int | None = None

    def __post_init__(self) -> None:
        self.base = str(self.base)  # --option base=2 arrives as an int
        if self.base not in BASES:
            raise ValueError(f"base must be one of {sorted(BASES)}, got {self.base!r}")
        _check_bits(self.name, wbits=self.wbits, abits=self.abits)
        if self.wbits < 2:
            raise ValueError("log weights need at least 2 bits (a sign and a magnitude)")
        wfsr, afsr = LOG_FSR_DEFAULTS[self.base]
        self.wfsr = wfsr if self.wfsr is None else self.wfsr
        self.afsr = afsr if self.afsr is None else self.afsr

    def bits(self) -> dict[str, int]:
        return {"w": self.wbits, "a": self.abits, "g": 32}

    def kernel_quantizer(self, position: Position) -> Any:
        if self.wbits >= FLOAT_BITS:
            return None
        return LogQuant(self.wbits, self.wfsr, self.base, signed=True)

    def input_quantizer(self, position: Position) -> Any:
        if self.abits >= FLOAT_BITS:
            return None
        return LogQuant(self.abits, self.afsr, self.base, signed=False)


@register
@dataclass
class QNN(Method):
    """Quantized Neural Networks (Hubara et al., arXiv:1609.07061): BinaryNet generalized
    to k-bit weights and activations with the uniform quantizer
    :class:`~pipeline.quantizers.linear.LinearQuant` (1 bit is BinaryNet's ``sign``).

    As in BinaryNet, latent weights are clipped to [-1, 1] after each update, every
    layer's weights are quantized (the image input is not), activations are batch norm →
    k-bit quantizer at the next layer's input (the quantizer's clip to [-1, 1) is the
    hard-tanh), and the backward pass is the hard-tanh STE. Defaults: 2-bit weights and
    activations; Adam with BinaryNet's exponential decay (×0.01 over the run).

    Latent weights are initialised ``U(-1, 1)``, the clip range, as the authors' BinaryNet
    code does (``H = 1``: ``W = Uniform((-H, H))``). Glorot's initialisation puts every
    LeNet-5 weight within ``|w| < 0.09``, below half a step (0.25 at 2 bits): every
    quantized kernel was 0, every gradient 0, and the network stayed at chance. Batch norm
    after each layer makes the forward pass indifferent to the weights' overall scale.
    """

    name = "qnn"
    summary = "QNN: k-bit uniform weights and activations, hard-tanh STE"
    paper = "Hubara et al. 2016, arXiv:1609.07061"

    wbits: int = 2
    abits: int = 2
    lr_schedule: str = "exponential"

    def __post_init__(self) -> None:
        _check_bits(self.name, wbits=self.wbits, abits=self.abits)

    def bits(self) -> dict[str, int]:
        return {"w": self.wbits, "a": self.abits, "g": 32}

    @staticmethod
    def _quantizer(bits: int) -> Any:
        if bits >= FLOAT_BITS:
            return None
        return "ste_sign" if bits == 1 else LinearQuant(bits)

    def kernel_quantizer(self, position: Position) -> Any:
        return self._quantizer(self.wbits)

    def input_quantizer(self, position: Position) -> Any:
        return self._quantizer(self.abits)

    def kernel_constraint(self, position: Position) -> Any:
        return "weight_clip"

    def _quant_kwargs(self, position: Position) -> dict[str, Any]:
        kwargs = super()._quant_kwargs(position)
        if kwargs:
            kwargs["kernel_initializer"] = tf.keras.initializers.RandomUniform(-1.0, 1.0)
        return kwargs

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        return x  # the next layer's input quantizer clips: that is the hard-tanh

"""Ternary weight methods: TWN, TTQ and the exact ternary projection of Yin et al. The math
is in :mod:`pipeline.quantizers.ternary`; this is policy. Activations stay float (ReLU) by
default; ``abits=1`` (``--abits 1``) binarizes them as BinaryNet does (batch norm, then
``sign`` with the hard-tanh STE at the next layer's input; the image is never binarized),
the ternary-weight / sign-activation networks of TTQ/TWN follow-ups, which the export
runs as two binary products per layer (:mod:`pipeline.export.keras_rewrite`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from pipeline.methods.base import Method, Position
from pipeline.methods.registry import register
from pipeline.quantizers.ternary import ExactTernary, TtqTernary, TwnTernary

ACTIVATION_BITS = (1, 32)  # sign or float


@dataclass
class _SignActivations(Method):
    """``abits``: 32 keeps float ReLU activations, 1 binarizes every quantized layer's
    input with ``ste_sign`` (BinaryNet's forward ``sign`` and hard-tanh STE)."""

    abits: int = 32

    def __post_init__(self) -> None:
        if self.abits not in ACTIVATION_BITS:
            raise ValueError(f"abits must be 1 (sign) or 32 (float), got {self.abits}")

    def bits(self) -> dict[str, int]:
        return {"w": 2, "a": self.abits, "g": 32}

    def input_quantizer(self, position: Position) -> Any:
        return "ste_sign" if self.abits == 1 else None

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        # sign at the next layer's input clips through its STE: a ReLU before it would
        # make every activation +1
        return x if self.abits == 1 else super().activation(x)


@dataclass
class _TernaryWeights(_SignActivations):
    per_channel: bool = False  # one α per output channel instead of one per layer

    def _axis(self) -> int | None:
        return -1 if self.per_channel else None


@register
@dataclass
class TWN(_TernaryWeights):
    """Ternary Weight Networks (Li & Liu 2016, arXiv:1605.04711): ``α W_t`` with
    ``Δ = 0.7 E|W|`` and ``α`` the mean magnitude above ``Δ``, one pair per layer; gradient
    straight through to the float weights
    (:class:`pipeline.quantizers.ternary.TwnTernary`). Every layer is ternary."""

    name = "twn"
    summary = "Ternary Weight Networks: alpha*{-1,0,1}, delta = 0.7 E|W|"
    paper = "Li & Liu 2016, arXiv:1605.04711"

    delta_factor: float = 0.7

    def kernel_quantizer(self, position: Position) -> Any:
        return TwnTernary(axis=self._axis(), delta_factor=self.delta_factor)


@register
@dataclass
class TernaryExact(_TernaryWeights):
    """Exact ternary projection (Yin, Zhang, Qi & Xin 2016, arXiv:1612.06052): the
    ``(α, T)`` minimizing ``||W − αT||²`` in closed form, gradient straight through
    (:class:`pipeline.quantizers.ternary.ExactTernary`). Every layer is ternary."""

    name = "ternary-exact"
    summary = "exact ternary projection: argmin ||W - alpha*T||^2 in closed form"
    paper = "Yin et al. 2016, arXiv:1612.06052"

    def kernel_quantizer(self, position: Position) -> Any:
        return ExactTernary(axis=self._axis())


@register
@dataclass
class TTQ(_SignActivations):
    """Trained Ternary Quantization (Zhu et al., ICLR 2017, arXiv:1612.01064): weights in
    ``{W_p, 0, −W_n}`` with trainable per-layer ``W_p``, ``W_n``, threshold
    ``Δ = t max|W|`` (:class:`pipeline.quantizers.ternary.TtqTernary`). The first
    convolution and the last fully connected layer stay full precision, as in the paper."""

    name = "ttq"
    summary = "Trained Ternary Quantization: {Wp, 0, -Wn}, trainable Wp/Wn per layer"
    paper = "Zhu et al. 2017, arXiv:1612.01064"

    quantize_first: bool = False
    quantize_last: bool = False
    threshold: float = 0.05

    def kernel_quantizer(self, position: Position) -> Any:
        return TtqTernary(threshold=self.threshold)

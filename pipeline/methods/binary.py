"""Binary methods: BinaryConnect (det./stoch.), BinaryNet (plain and shift-based), BWN and
XNOR-Net. The math is in :mod:`pipeline.quantizers.binary` and larq; this is policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import larq as lq
import tensorflow as tf

from pipeline.layers.shift_batchnorm import ShiftBatchNormalization
from pipeline.layers.xnor import XnorConv2D, XnorDense
from pipeline.methods.base import Method, Position
from pipeline.methods.optimizers import ShiftAdaMax
from pipeline.methods.registry import register
from pipeline.quantizers.binary import GlorotClip, StochasticBinary, XnorWeightSign


@register
@dataclass
class BinaryConnect(Method):
    """BinaryConnect, deterministic (Courbariaux, Bengio & David, NIPS 2015,
    arXiv:1511.00363).

    Weights ``w_b = sign(w)`` (eq. 1, ``sign(0) = +1``) in the forward and backward passes;
    the gradient with respect to ``w_b`` updates the float ``w`` unchanged (Algorithm 1),
    which larq's ``SteSign(clip_value=None)`` is exactly, and ``w`` is clipped after each
    update. Activations stay float (ReLU). Every layer's weights are binary, as in the
    paper. The paper trains with Adam and an exponentially decaying learning rate.

    ``glorot_scaling`` (default, as the authors' code trains): each layer's latent range
    is ``[-H, H]`` with ``H`` = :func:`pipeline.quantizers.binary.glorot_bound`, initialised
    ``U(-H, H)`` and clipped there (:class:`pipeline.quantizers.binary.GlorotClip`) — the
    paper's ``[-1, 1]`` range with the per-layer learning rate ``× 1/H`` (see
    :class:`~pipeline.quantizers.binary.StochasticBinary`). Without it the latent weights
    start at Glorot's ``U(-2H, 2H)`` inside ``[-1, 1]`` and barely move relative to that
    range, so the stochastic variant samples ``p ≈ 0.5`` everywhere: pure noise.
    """

    name = "binaryconnect"
    summary = "BinaryConnect: sign weights (deterministic), float activations"
    paper = "Courbariaux et al. 2015, arXiv:1511.00363"

    lr_schedule: str = "exponential"
    glorot_scaling: bool = True

    def bits(self) -> dict[str, int]:
        return {"w": 1, "a": 32, "g": 32}

    def kernel_quantizer(self, position: Position) -> Any:
        return lq.quantizers.SteSign(clip_value=None)

    def kernel_constraint(self, position: Position) -> Any:
        return GlorotClip() if self.glorot_scaling else "weight_clip"

    def _quant_kwargs(self, position: Position) -> dict[str, Any]:
        kwargs = super()._quant_kwargs(position)
        if kwargs and self.glorot_scaling:  # U(-H, H): H = sqrt(1.5 / (fan_in + fan_out))
            kwargs["kernel_initializer"] = tf.keras.initializers.VarianceScaling(
                0.25, mode="fan_avg", distribution="uniform"
            )
        return kwargs


@register
@dataclass
class BinaryConnectStochastic(BinaryConnect):
    """BinaryConnect, stochastic (arXiv:1511.00363, eq. 2-3): ``w_b = +1`` with probability
    ``hard_sigmoid(w / H)``, resampled at every training forward pass; deterministic
    ``sign(w)`` at inference and in the exported model (see
    :class:`pipeline.quantizers.binary.StochasticBinary`; ``H`` as in ``binaryconnect``).

    Batch norm's moving statistics are collected under the *sampled* weights, so they do
    not normalize the deterministic network evaluated and exported; ``recalibrate_bn``
    (default) re-estimates them after training on training images with the weights
    binarized as at inference (:mod:`pipeline.layers.recalibrate`). The paper does not say
    how its inference-time batch norm was estimated."""

    name = "binaryconnect-stochastic"
    summary = "BinaryConnect: weights sampled +1 w.p. hard_sigmoid(w); sign at inference"
    paper = "Courbariaux et al. 2015, arXiv:1511.00363"

    recalibrate_bn: bool = True

    def kernel_quantizer(self, position: Position) -> Any:
        return StochasticBinary(bound="glorot" if self.glorot_scaling else 1.0)


@register
@dataclass
class BNN(Method):
    """BinaryNet (Hubara et al., NIPS 2016, arXiv:1602.02830).

    Weights and activations are ``sign(x)`` in the forward pass; the backward pass is the
    hard-tanh straight-through estimator ``g_in = g * 1{|x| <= 1}`` (eq. 4 of the paper),
    for which larq's ``ste_sign`` is exact. Latent weights are clipped to [-1, 1] after
    each update. The first layer's input (the image) stays full precision, and there is
    no activation function: the sign in the next layer's input quantizer is the
    non-linearity, which is what LCE fuses into ``LceBconv2d``. The paper trains with
    Adam and an exponentially decaying learning rate over hundreds of epochs; the default
    here is a cosine decay, tuned for the few-epoch default run
    (``--option lr_schedule=exponential`` gives the paper's).
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


@register
@dataclass
class BNNShift(BNN):
    """BinaryNet with its multiplication-free training variants (arXiv:1602.02830):
    shift-based batch normalization (Algorithm 3,
    :class:`pipeline.layers.shift_batchnorm.ShiftBatchNormalization`) and shift-based
    AdaMax (Algorithm 2, :class:`pipeline.methods.optimizers.ShiftAdaMax`, with the paper's
    ``α = 2^-10``). Weights, activations and the learning-rate schedule as in ``bnn``
    (the paper trains both variants with the same schedule), so the two differ only in
    the shift-based batch norm and optimizer."""

    name = "bnn-shift"
    summary = "BinaryNet with shift-based batch norm and shift-based AdaMax"
    paper = "Hubara et al. 2016, arXiv:1602.02830 (Alg. 2, 3)"

    optimizers = ("shift-adamax", "adamax", "adam", "sgd")

    learning_rate: float = 2.0**-10
    # "adam" (bnn's) or "adamax" (Kingma & Ba's, no shifts, same β): for ablations
    optimizer_name: str = "shift-adamax"
    shift_batch_norm: bool = True  # false: bnn's batch norm (for ablations)

    def normalization(self) -> tf.keras.layers.Layer:
        if not self.shift_batch_norm:
            return super().normalization()
        return ShiftBatchNormalization(momentum=0.9, epsilon=1e-4)

    def optimizer(self, learning_rate: Any) -> tf.keras.optimizers.Optimizer:
        if self.optimizer_name == "shift-adamax":
            return ShiftAdaMax(learning_rate)
        if self.optimizer_name == "adamax":
            return tf.keras.optimizers.Adamax(learning_rate, 1.0 - 2.0**-3, 1.0 - 2.0**-10)
        return super().optimizer(learning_rate)


@register
@dataclass
class BWN(Method):
    """Binary-Weight-Networks (Rastegari et al., ECCV 2016, arXiv:1603.05279, §3.1):
    weights ``α sign(W)``, ``α = ||W||_ℓ1 / n`` per output filter, with the paper's
    gradient ``∂C/∂W_i = ∂C/∂W̃_i (1/n + α 1{|W_i| ≤ 1})``
    (:class:`pipeline.quantizers.binary.XnorWeightSign`); float activations (ReLU). First
    and last layers stay full precision, as in the paper's experiments; latent weights are
    clipped to [-1, 1] as in the authors' code (the gradient's mask assumes that range)."""

    name = "bwn"
    summary = "Binary-Weight-Networks: alpha*sign(W) per output filter, float activations"
    paper = "Rastegari et al. 2016, arXiv:1603.05279"

    quantize_first: bool = False
    quantize_last: bool = False

    def bits(self) -> dict[str, int]:
        return {"w": 1, "a": 32, "g": 32}

    def kernel_quantizer(self, position: Position) -> Any:
        return XnorWeightSign()

    def kernel_constraint(self, position: Position) -> Any:
        return "weight_clip"


@register
@dataclass
class XNOR(BWN):
    """XNOR-Net (arXiv:1603.05279, §3.2): BWN weights and ``sign(I)`` inputs (hard-tanh STE),
    the binary product rescaled by ``K`` — the box-filtered channel mean of ``|I|`` — for
    convolutions (eq. 11, :class:`pipeline.layers.xnor.XnorConv2D`) and by ``β = ||X||_ℓ1/n``
    for dense layers (eq. 10). No activation function between layers: the input sign is the
    non-linearity (the block is BN → sign → binary conv). First and last layers stay full
    precision."""

    name = "xnor"
    summary = "XNOR-Net: alpha*sign(W), sign(I) scaled by K, binary products"
    paper = "Rastegari et al. 2016, arXiv:1603.05279"

    def bits(self) -> dict[str, int]:
        return {"w": 1, "a": 1, "g": 32}

    def input_quantizer(self, position: Position) -> Any:
        return "ste_sign"

    def conv2d(self, filters: int, kernel_size: int, position: Position, **kwargs: Any):
        if not self.quantizes(position) or position is Position.FIRST:
            return super().conv2d(filters, kernel_size, position, **kwargs)
        kwargs.setdefault("use_bias", False)
        return XnorConv2D(filters, kernel_size, **self._quant_kwargs(position), **kwargs)

    def dense(self, units: int, position: Position, **kwargs: Any):
        if not self.quantizes(position) or position is Position.FIRST:
            return super().dense(units, position, **kwargs)
        kwargs.setdefault("use_bias", False)
        return XnorDense(units, **self._quant_kwargs(position), **kwargs)

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        return x

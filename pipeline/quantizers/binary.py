"""Binary quantizers that larq lacks: stochastic BinaryConnect, XNOR-Net's scaled sign, and
BinaryNet's power-of-two approximation ``AP2`` (used by shift-based batch norm and AdaMax).

Deterministic BinaryConnect and BinaryNet's sign need nothing new: larq's ``SteSign`` is
their exact definition (see :mod:`pipeline.methods.binary`). Every class here is a larq
``Quantizer`` (a Keras layer), registered with Keras so saved models reload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import larq as lq
import tensorflow as tf
from larq import math as lq_math

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

register = tf.keras.utils.register_keras_serializable(package="bitlite")
smart_cond = tf.__internal__.smart_cond.smart_cond


def hard_sigmoid(x: tf.Tensor) -> tf.Tensor:
    """``σ(x) = clip((x + 1) / 2, 0, 1)`` — BinaryConnect eq. (3)."""
    return tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0)


def ap2(x: tf.Tensor) -> tf.Tensor:
    """Approximate power of two, ``AP2(x) = sign(x) · 2^round(log2 |x|)``.

    BinaryNet (Hubara et al., NIPS 2016, arXiv:1602.02830), Algorithm 3: multiplying by
    ``AP2(y)`` is a left or right binary shift. ``AP2(0) = 0``.
    """
    magnitude = tf.pow(2.0, tf.round(tf.math.log(tf.abs(x)) / tf.math.log(2.0)))
    return tf.where(tf.equal(x, 0.0), tf.zeros_like(x), tf.sign(x) * magnitude)


def straight_through(quantize: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """``quantize(x)`` forward, the incoming gradient passed to ``x`` unchanged (the
    straight-through estimator without clipping). The output values are exactly those of
    ``quantize`` (``x + stop_gradient(q - x)`` would round ±1 to 0.99999994)."""

    @tf.custom_gradient
    def _call(x):
        return quantize(x), lambda dy: dy

    return _call(x)


def ap2_ste(x: tf.Tensor) -> tf.Tensor:
    """``AP2`` forward, identity backward: AP2 is piecewise constant (zero gradient almost
    everywhere), so training through it needs a straight-through estimator, as for sign."""
    return straight_through(ap2, x)


def glorot_bound(shape: Any) -> float:
    """``H = sqrt(1.5 / (fan_in + fan_out))`` of a dense ``(in, out)`` or convolution
    ``(kh, kw, in, out)`` kernel: half of Glorot & Bengio's uniform bound. BinaryConnect's
    code (``W_LR_scale = "Glorot"``) scales each layer's learning rate by ``1/H``; see
    :class:`StochasticBinary` for how the same training is expressed here."""
    dims = [int(d) for d in shape]
    receptive = 1
    for d in dims[:-2]:
        receptive *= d
    fan_in, fan_out = dims[-2] * receptive, dims[-1] * receptive
    return (1.5 / (fan_in + fan_out)) ** 0.5


def _bound(bound: float | str, shape: Any) -> float:
    if bound == "glorot":
        return glorot_bound(shape)
    return float(bound)


@register
class StochasticBinary(lq.quantizers._BaseQuantizer):
    r"""Stochastic BinaryConnect (Courbariaux et al., NIPS 2015, arXiv:1511.00363).

    Training, eq. (2)-(3), for a latent ``w`` in ``[-H, H]``: every forward pass draws a
    fresh sample

    \\[ w_b = +1 \text{ with probability } p = \sigma(w / H)
        = \mathrm{clip}(\tfrac{w/H+1}{2}, 0, 1), \quad -1 \text{ with probability } 1-p. \\]

    ``bound`` is ``H``: ``1`` gives the paper's eq. (3) literally; ``"glorot"`` gives the
    layer's :func:`glorot_bound`, which is how the authors' code trains (``H = 1`` plus a
    per-layer learning rate ``× 1/H_glorot``): with the latent ``w = H w'`` kept in
    ``[-H, H]`` (:class:`GlorotClip`) and initialised ``U(-H, H)``, the sampled ``w_b``,
    the gradient and so every Adam step are the same, and a step of ``lr`` on ``w`` is a
    step of ``lr / H`` on ``w'`` — the paper's scaled rate, exactly.

    Backward (Algorithm 1): the gradient with respect to ``w_b`` is applied to the latent
    ``w`` unchanged (straight through). Inference (``training`` false or unset): the
    deterministic ``sign(w)`` of eq. (1), so the exported model has fixed ±1 weights
    (§2.6 lists this among the test-time options).
    """

    precision = 1

    def __init__(self, bound: float | str = 1.0, seed: int | None = None, **kwargs: Any):
        self.bound = bound
        self.seed = seed
        super().__init__(**kwargs)

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        # Keras passes the enclosing model's ``training`` down to nested layers.
        if training is None:
            training = tf.keras.backend.learning_phase()
        outputs = smart_cond(
            training,
            lambda: straight_through(self._sample, inputs),
            lambda: straight_through(lq_math.sign, inputs),
        )
        return super().call(outputs)

    def _sample(self, w: tf.Tensor) -> tf.Tensor:
        p = hard_sigmoid(w / _bound(self.bound, w.shape))
        u = tf.random.uniform(tf.shape(w), dtype=w.dtype, seed=self.seed)
        return tf.where(u < p, tf.ones_like(w), -tf.ones_like(w))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bound": self.bound, "seed": self.seed}


@register
class GlorotClip(tf.keras.constraints.Constraint):
    """Clip a kernel to ``[-H, H]``, ``H`` = :func:`glorot_bound` of its shape: BinaryConnect's
    latent-weight clipping (Algorithm 1) in the scaled form of :class:`StochasticBinary`."""

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        h = glorot_bound(w.shape)
        return tf.clip_by_value(w, -h, h)


def xnor_weight_sign(w: tf.Tensor, clip_value: float = 1.0) -> tf.Tensor:
    r"""XNOR-Net's binary weight with its own gradient (Rastegari et al., ECCV 2016,
    arXiv:1603.05279, §3.1).

    Forward, eq. (4)-(6): ``W̃ = α sign(W)`` with ``α = ||W||_ℓ1 / n`` per output filter
    (``n`` = elements of one filter: all axes but the last).
    Backward, §3.1 "Training Binary-Weights-Networks":

    \\[ \frac{\partial C}{\partial W_i} = \frac{\partial C}{\partial \widetilde W_i}
        \left(\frac{1}{n} + \alpha\, 1_{|W_i| \le 1}\right) \\]

    (the paper's ``∂sign/∂r = r 1_{|r|≤1}`` is the hard-tanh STE of BinaryNet).
    """
    axes = list(range(len(w.shape) - 1))
    n = tf.cast(tf.reduce_prod(tf.shape(w)[:-1]), w.dtype)

    @tf.custom_gradient
    def _call(w):
        alpha = tf.reduce_mean(tf.abs(w), axis=axes)

        def grad(dy):
            mask = tf.cast(tf.abs(w) <= clip_value, dy.dtype)
            return dy * (1.0 / n + alpha * mask)

        return alpha * lq_math.sign(w), grad

    return _call(w)


@register
class XnorWeightSign(lq.quantizers._BaseQuantizer):
    """XNOR-Net / BWN weight binarization ``α sign(W)``, ``α`` per output filter: see
    :func:`xnor_weight_sign`. LCE folds the per-channel ``α`` into ``LceBconv2d``."""

    precision = 1

    def __init__(self, clip_value: float = 1.0, **kwargs: Any):
        self.clip_value = clip_value
        super().__init__(**kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return super().call(xnor_weight_sign(inputs, self.clip_value))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "clip_value": self.clip_value}

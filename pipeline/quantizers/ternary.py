"""Ternary weight quantizers: TWN, TTQ and Yin et al.'s exact ternary projection.

``twn_ternarize`` and ``exact_ternarize`` are plain functions (``W ↦ α W_t``, per tensor or
per output channel) so the tools stage can reuse them outside training; the registered
quantizer classes add the training gradient of each paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.binary import straight_through

register = tf.keras.utils.register_keras_serializable(package="bitlite")


# -- projections (no gradient of their own) ---------------------------------------------


def _per_group(fn: Callable[[tf.Tensor], tf.Tensor], w: tf.Tensor, axis: int | None) -> tf.Tensor:
    """Apply ``fn`` to each column of a matrix whose columns are the groups that share one
    ``α``: the whole tensor (``axis=None``) or each index along ``axis``."""
    w = tf.convert_to_tensor(w)
    if axis is None:
        return tf.reshape(fn(tf.reshape(w, [-1, 1])), tf.shape(w))
    rank = len(w.shape)
    axis = axis % rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    moved = tf.transpose(w, perm)
    out = tf.reshape(fn(tf.reshape(moved, [-1, tf.shape(moved)[-1]])), tf.shape(moved))
    return tf.transpose(out, tf.math.invert_permutation(perm))


def _twn_columns(m: tf.Tensor, delta_factor: float) -> tf.Tensor:
    absm = tf.abs(m)
    delta = delta_factor * tf.reduce_mean(absm, axis=0)
    mask = tf.cast(absm > delta, m.dtype)
    alpha = tf.math.divide_no_nan(tf.reduce_sum(absm * mask, axis=0), tf.reduce_sum(mask, axis=0))
    return alpha * tf.sign(m) * mask


def twn_ternarize(w: tf.Tensor, axis: int | None = None, delta_factor: float = 0.7) -> tf.Tensor:
    r"""TWN's approximate solution of ``min ||W − α W_t||²`` (Li & Liu 2016,
    arXiv:1605.04711, §2.2):

    \\[ W_t^i = \begin{cases} +1 & W_i > \Delta \\ 0 & |W_i| \le \Delta \\ -1 & W_i < -\Delta
        \end{cases}, \quad \Delta = 0.7\, E|W|, \quad
        \alpha = \frac{1}{|I_\Delta|} \sum_{i \in I_\Delta} |W_i|,\ I_\Delta = \{i : |W_i| > \Delta\} \\]

    (``0.7`` assumes normally distributed weights; ``2/3`` suits uniform ones.) Returns
    ``α W_t`` with one ``(Δ, α)`` for the tensor (``axis=None``) or per index of ``axis``
    (``axis=-1``: per output channel of a Keras kernel).
    """
    return _per_group(lambda m: _twn_columns(m, delta_factor), w, axis)


def _exact_columns(m: tf.Tensor) -> tf.Tensor:
    # float64: near the optimum adjacent k score almost alike, and float32 rounding of the
    # cumulative sums (which differs between TensorFlow and the converter's constant
    # folding) would otherwise pick a different k*.
    dtype = m.dtype
    m = tf.cast(m, tf.float64)
    absm = tf.abs(m)
    ranked = tf.sort(absm, axis=0, direction="DESCENDING")
    partial = tf.cumsum(ranked, axis=0)  # S_k = Σ_{i≤k} |W|_(i)
    k = tf.cast(tf.range(1, tf.shape(m)[0] + 1), m.dtype)[:, None]
    best = tf.argmax(partial * partial / k, axis=0)  # k* − 1 per column
    columns = tf.range(tf.shape(m)[1], dtype=best.dtype)
    index = tf.stack([best, columns], axis=1)
    alpha = tf.gather_nd(partial, index) / (tf.cast(best, m.dtype) + 1.0)
    threshold = tf.gather_nd(ranked, index)  # |W|_(k*): the k* largest stay non-zero
    mask = tf.cast(absm >= threshold, m.dtype) * tf.cast(threshold > 0, m.dtype)
    return tf.cast(alpha * tf.sign(m) * mask, dtype)


def exact_ternarize(w: tf.Tensor, axis: int | None = None) -> tf.Tensor:
    r"""The exact minimizer of ``||W − α T||²`` over ``α > 0``, ``T ∈ {−1, 0, 1}^n`` (Yin,
    Zhang, Qi & Xin 2016, arXiv:1612.06052, the closed-form ternary projection of §2):
    with ``|W|_(1) ≥ |W|_(2) ≥ …`` sorted,

    \\[ k^* = \arg\max_k \frac{\left(\sum_{i \le k} |W|_{(i)}\right)^2}{k}, \quad
        \alpha = \frac{1}{k^*} \sum_{i \le k^*} |W|_{(i)}, \quad
        T_i = \mathrm{sign}(W_i)\, 1_{|W_i| \ge |W|_{(k^*)}} \\]

    (``||W − αT||² = ||W||² − S_k²/k`` at the optimal ``α``, hence the arg max). Grouping by
    ``axis`` as in :func:`twn_ternarize`. Ties at ``|W|_(k*)`` all stay non-zero.
    """
    return _per_group(_exact_columns, w, axis)


# -- quantizers ------------------------------------------------------------------------


class _TernaryProjection(lq.quantizers._BaseQuantizer):
    precision = 2

    def __init__(self, axis: int | None = None, **kwargs: Any):
        self.axis = axis
        super().__init__(**kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


@register
class TwnTernary(_TernaryProjection):
    """TWN weights ``α W_t`` (:func:`twn_ternarize`). Training (arXiv:1605.04711, §2.3,
    Algorithm 1): the ternary weights are used in the forward and backward passes and the
    gradient with respect to them updates the float weights unchanged (straight through;
    no clipping)."""

    def __init__(self, axis: int | None = None, delta_factor: float = 0.7, **kwargs: Any):
        self.delta_factor = delta_factor
        super().__init__(axis=axis, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        ternarize = lambda w: twn_ternarize(w, self.axis, self.delta_factor)  # noqa: E731
        return super().call(straight_through(ternarize, inputs))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta_factor": self.delta_factor}


@register
class ExactTernary(_TernaryProjection):
    """Yin et al.'s exact ternary projection (:func:`exact_ternarize`). Training
    (arXiv:1612.06052, §3): BinaryConnect-style — the gradient at the projected weights
    updates the float weights unchanged (straight through)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        ternarize = lambda w: exact_ternarize(w, self.axis)  # noqa: E731
        return super().call(straight_through(ternarize, inputs))


def ttq_ternarize(w: tf.Tensor, wp: tf.Tensor, wn: tf.Tensor, threshold: float) -> tf.Tensor:
    r"""Trained Ternary Quantization (Zhu, Han, Mao & Dally, ICLR 2017, arXiv:1612.01064, §3).

    Forward, eq. (5)-(6): with ``Δ = t · max|W̃|`` on ``W̃ = W / max|W|`` (i.e. ``Δ = t max|W|``
    on ``W``),

    \\[ w^t = \begin{cases} W_p & \tilde w > \Delta \\ 0 & |\tilde w| \le \Delta \\
        -W_n & \tilde w < -\Delta \end{cases} \\]

    Backward, eq. (7)-(8), with ``g = ∂L/∂w^t``:
    ``∂L/∂W_p = Σ_{w̃>Δ} g``, ``∂L/∂W_n = −Σ_{w̃<−Δ} g``, and the latent gradient is
    ``W_p g``, ``g``, ``W_n g`` on the three regions. Eq. (7) prints the ``W_n`` sum without
    its sign (``W_n`` enters as a magnitude); ``−Σ`` is the derivative of the forward pass
    and what the authors' code computes — with ``+Σ``, ``W_n`` would climb the loss.
    """

    @tf.custom_gradient
    def _call(w, wp, wn):
        delta = threshold * tf.reduce_max(tf.abs(w))
        pos = tf.cast(w > delta, w.dtype)
        neg = tf.cast(w < -delta, w.dtype)

        def grad(dy):
            latent = dy * (wp * pos + (1.0 - pos - neg) + wn * neg)
            return latent, tf.reduce_sum(dy * pos), -tf.reduce_sum(dy * neg)

        return wp * pos - wn * neg, grad

    return _call(w, wp, wn)


@register
class TtqTernary(lq.quantizers._BaseQuantizer):
    """TTQ quantizer (:func:`ttq_ternarize`) owning the layer's trainable scalars ``W_p``
    and ``W_n``. Larq quantizers are Keras layers held by the quantized layer, so the two
    scalars are tracked, trained and saved with it. Both start at 1.0, as in the authors'
    code (the next batch norm absorbs the overall scale)."""

    precision = 2

    def __init__(self, threshold: float = 0.05, **kwargs: Any):
        self.threshold = threshold
        super().__init__(**kwargs)

    def build(self, input_shape: Any) -> None:
        self.wp = self.add_weight(name="wp", shape=(), initializer="ones", trainable=True)
        self.wn = self.add_weight(name="wn", shape=(), initializer="ones", trainable=True)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        wp = tf.convert_to_tensor(self.wp)
        wn = tf.convert_to_tensor(self.wn)
        return super().call(ttq_ternarize(inputs, wp, wn, self.threshold))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}

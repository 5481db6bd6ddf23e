"""Keras-level rewrites before conversion: what LCE needs to see to bitpack a layer.

LCE turns a convolution into a bitpacked ``LceBconv2d`` only when it sees ``sign()`` on the
input and a constant filter whose values are ``±α_c`` per output channel (``α_c`` then
becomes the op's per-channel post-activation multiplier). It never does this for a dense
layer, and it only recognizes larq's own sign. So, for every larq quantized layer:

- the effective weights ``W_q = kernel_quantizer(W)`` are computed once and *baked* into
  the kernel (the quantizer is dropped), so whatever quantizer a method uses — larq's,
  bitlite's, stochastic or with trainable scales — the converter sees the exact values
  the layer computes with at inference;
- a layer whose input quantizer is numerically ``sign`` (any STE variant: the forward
  pass is the same) and whose ``W_q`` is ``±α_c`` per output channel gets larq's
  ``ste_sign`` on the input and ``magnitude_aware_sign`` on the kernel (``ste_sign`` when
  every ``α_c = 1``); both reproduce ``W_q`` exactly, and LCE folds ``α_c`` into the
  ``LceBconv2d`` multiplier — XNOR-Net, BNN and DoReFa's 1-bit ``E|W| sign(W)`` alike;
- such a *dense* layer over a flat input becomes ``reshape(N,1,1,F) → 1×1 binary
  convolution → reshape(N,units)``: ``y_j = Σ_i x_i W_ij`` either way, so outputs are the
  same and the weights end bitpacked (32 per int32 word) instead of float32;
- a binary-weight *dense* layer fed straight by the image (the first layer, whose input is
  real-valued) is split into its input's bit planes: an 8-bit pixel ``p = Σ_k 2^k b_k``
  normalized as ``x = (p - 127.5) / 127.5`` is ``x = Σ_k 2^(k-1) s_k / 127.5`` with
  ``s_k = 2 b_k - 1 ∈ {±1}`` (exact, no constant term), so ``x·W = Σ_k c_k (s_k·W)``: eight
  binary products with the same bitpacked weights, the ±1 planes stacked on the batch axis
  (BinaryNet §2.6's first layer, XNOR-popcount over bit planes). Without it the 784×1024
  layer of a binary MLP stays int8 and alone is 3/4 of the file (issue 5);
- a layer that rescales its binary product by the input (XNOR-Net's ``K`` for
  convolutions, ``β = ||X||_ℓ1/n`` for dense layers) keeps its class: the rescaling stays
  a float branch (``ABS → MEAN → box CONV_2D → MUL``) beside the ``LceBconv2d``, and a
  dense layer becomes a 1×1 ``XnorConv2D``, whose ``K`` over a ``(N,1,1,F)`` input is
  exactly ``β``;
- a layer whose input quantizer is a uniform grid of ``n <= 16`` levels (k = ⌈log2 n⌉ <= 4
  bits: DoReFa's ``quantize_k``, QNN's ``LinearQuant``, sign) and whose weights have at
  most 4 levels per output channel (binary, ternary, TTQ, 2-bit uniform) becomes a sum of
  binary products (:class:`BitPlaneProduct`, issue 16). Three exact identities:

  * activations: ``a = o + δ m``, ``m = Σ_i 2^i b_i`` (bits ``b_i``), ``s_i = 2 b_i − 1``
    give ``a = d + Σ_i c_i s_i`` with ``c_i = δ 2^(i−1)``, ``d = o + δ (2^k − 1)/2``
    (DoReFa: ``o = 0, δ = 1/(2^k−1)``; QNN 2-bit: ``o = −1, δ = 1/2``; sign: ``d = 0``);
  * weights: a channel with levels ``l_0 < … < l_{n−1}`` is ``W = z + Σ_j y_j S_j`` with
    ``S_j ∈ {±1}``: thermometer planes ``S_j = sign(W ≥ l_j)``, ``y_j = (l_j − l_{j−1})/2``,
    ``z = (l_0 + l_{n−1})/2`` (binary ``±α = α S``; ternary ``{−α, 0, α} = α (S_1 + S_2)/2``;
    TTQ ``{−W_n, 0, W_p}`` has ``z = (W_p − W_n)/2``), or, for 4 levels with
    ``l_3 − l_2 = l_1 − l_0`` (2-bit uniform), two planes ``z ± y_1 ± y_2``:
    ``{−3, −1, 1, 3}·α/3 = α (2 S_1 + S_2)/3``;
  * so ``a·W = d·ΣW + Σ_i c_i [Σ_j y_j (s_i·S_j) + z (s_i·1)]``: the ``k`` planes go
    through ONE ``LceBconv2d`` stacked on the batch axis, its filters the ``J`` weight
    planes side by side (plus one all-ones filter when some ``z_c ≠ 0``), and the
    constants ``c_i``, ``y_jc``, ``z_c`` and ``d·ΣW_c + bias_c`` are per-plane / per-channel
    multipliers and a bias after it.

  Two plane encodings (the cheaper per layer by :mod:`pipeline.export.plane_cost`, named
  in :attr:`LayerPlan.encoding`): ``binary`` — the ``k`` bit planes above, one product
  each, stacked on the batch axis; ``thermometer`` — the ``n − 1`` equal-weight planes
  ``s_t = sign(m − t + ½)`` (``m = Σ_t (s_t + 1)/2``, so every ``c_t = δ/2`` and
  ``d = o + δ (n − 1)/2``) side by side on the channel axis, through ONE product whose
  kernel repeats the weight planes ``n − 1`` times along its input channels.

  The image is such an input too when its grid is known (``x = (p − 127.5)·s``: ``o =
  −127.5 s``, ``δ = s``, 256 levels, ``d = 0``): a first convolution or dense layer with
  ≤ 4-level weights (binary, ternary, 2-bit) runs on the pixels' 8 bit planes, ``8·J``
  binary products (DoReFa keeps its first layer's weights float by design: it stays).

  Padding: Keras pads the *quantized* activation with ``pad_values`` (0), which is no ±1
  plane when ``d ≠ 0``. Where that value is a level (``o + δ m_p``), the activation is
  padded explicitly before the planes are cut and the convolution runs VALID: every
  padded position is then a real code ``m_p`` and the identity holds at the border too.
  Where ``d = 0`` (sign inputs) LCE's own zero padding of the planes is already exact.

Weights that are not binary (ternary, power-of-two, k-bit) and that no rule above takes
stay float here and become int8 in the flatbuffer (:mod:`pipeline.tflite.rewrite`); the
plan says why (:attr:`LayerPlan.reason`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# isort: off
import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
import larq as lq
import tensorflow as tf
# isort: on

from pipeline.data.base import PIXEL_OFFSET, PIXEL_SCALE
from pipeline.export import plane_cost
from pipeline.layers.xnor import XnorConv2D, XnorDense

BINARY_RTOL = 1e-6  # |W_q| equal to α_c within this: float32 rounding, not a second level
# TensorFlow's converter folds a constant op only when its operands total at most 2^30
# bits (kOperandsSizeThreshold, tensorflow/compiler/mlir/tensorflow/transforms/
# constant_fold.cc): a larger float32 kernel keeps its quantizer's ops in the graph.
FOLD_LIMIT_BITS = 1 << 30

# The convolution a binary dense layer becomes (1×1, over a reshaped input). A layer that
# scales its output by a function of its input needs the convolution that computes the
# same scale: dropping it changes every output (issue 5's xnor parity failure).
CONV_FOR_DENSE: dict[type, type] = {XnorDense: XnorConv2D}


@dataclass
class LayerPlan:
    """What the rewrite did to one quantized layer (goes into the export report)."""

    layer: str
    kind: str  # "conv2d" | "dense" | "depthwise_conv2d"
    # "bconv" | "dense->1x1 bconv" | "bit planes->1x1 bconv" | "planes->bconv" | "baked"
    action: str
    binary_input: bool
    binary_weights: bool
    scaled: bool  # α_c != 1 (folded into LceBconv2d's multiplier)
    activation_planes: int = 0  # k: ±1 planes of the input ("planes->bconv")
    weight_planes: int = 0  # J: ±1 planes of the weights
    ones_filter: bool = False  # an all-ones filter carries the weights' offsets z_c
    products: int = 0  # binary products per output: k·J (+ k for the ones filter)
    reason: str = ""  # why a "baked" layer is not on binary kernels
    # "binary" (2^i-weighted planes, one product each) | "thermometer" (equal planes on
    # the channel axis, one product): the cheaper by plane_cost, or the one forced
    encoding: str = ""
    costs: dict[str, float] = field(default_factory=dict)  # plane_cost estimate each
    kernel_bits: dict[str, int] = field(default_factory=dict)  # stored kernel, each
    why_encoding: str = ""  # the cost model's pick, the size budget, or forced

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_sign(quantizer: Any) -> bool:
    """True when ``quantizer`` computes larq's sign in the forward pass (0 -> +1)."""
    if quantizer is None:
        return False
    probe = np.concatenate([np.linspace(-3, 3, 61), [0.0, 1e-7, -1e-7]]).astype(np.float32)
    try:
        out = np.asarray(quantizer(tf.constant(probe)))
    except Exception:  # a quantizer that only works in a layer context: not a plain sign
        return False
    return bool(np.array_equal(out, np.where(probe >= 0, 1.0, -1.0)))


def channel_scales(w_q: np.ndarray) -> np.ndarray | None:
    """``α_c`` when every output channel (last axis) of ``w_q`` is ``±α_c``, else None."""
    flat = np.abs(w_q.reshape(-1, w_q.shape[-1]))
    alpha = flat.max(axis=0)
    if np.any(alpha <= 0):
        return None
    if not np.allclose(flat, alpha, rtol=BINARY_RTOL, atol=0):
        return None
    return alpha


def effective_kernel(layer: Any) -> np.ndarray:
    """The weights a larq layer multiplies with at inference: ``kernel_quantizer(kernel)``."""
    kernel = layer.depthwise_kernel if _kind(layer) == "depthwise_conv2d" else layer.kernel
    quantizer = (
        layer.depthwise_quantizer if _kind(layer) == "depthwise_conv2d" else layer.kernel_quantizer
    )
    latent = tf.constant(getattr(kernel, "latent_variable", kernel).numpy())
    return np.asarray(quantizer(latent) if quantizer is not None else latent, dtype=np.float32)


def _kind(layer: Any) -> str | None:
    if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
        return "depthwise_conv2d"
    if isinstance(layer, lq.layers.QuantConv2D):
        return "conv2d"
    if isinstance(layer, lq.layers.QuantDense):
        return "dense"
    return None


@tf.keras.utils.register_keras_serializable("bitlite")
class DenseAsBinaryConv(tf.keras.layers.Layer):
    """A dense layer computed as a 1×1 binary convolution so LCE bitpacks it.

    ``conv`` is the serialized convolution (``tf.keras.layers.serialize``): a larq
    ``QuantConv2D``, or a subclass that rescales its product (``XnorConv2D``)."""

    def __init__(self, conv: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.conv = tf.keras.layers.deserialize(conv)
        self.units = int(self.conv.filters)

    def build(self, input_shape: Any) -> None:
        self.conv.build((None, 1, 1, int(input_shape[-1])))
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        y = self.conv(tf.reshape(x, [-1, 1, 1, x.shape[-1]]))
        return tf.reshape(y, [-1, self.units])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "conv": tf.keras.layers.serialize(self.conv)}


@tf.keras.utils.register_keras_serializable("bitlite")
class BitPlaneDense(DenseAsBinaryConv):
    """A binary-weight dense layer over normalized 8-bit pixels, as 8 binary products.

    ``x = (p - 127.5) · scale`` for an integer pixel ``p = Σ_k 2^k b_k`` (bits ``b_k``),
    so ``x = scale · Σ_k 2^(k-1) s_k`` with ``s_k = 2 b_k - 1``: each plane is ±1 and goes
    through the same 1×1 binary convolution (bitpacked once); the planes' outputs are
    summed with weights ``scale · 2^(k-1)``. The bias is added once, after the sum."""

    def __init__(self, conv: dict[str, Any], scale: float, bits: int = 8, **kwargs: Any):
        super().__init__(conv, **kwargs)
        self.scale = float(scale)
        self.bits = int(bits)
        self.center = (2**self.bits - 1) / 2  # the pixel value that normalizes to 0

    def build(self, input_shape: Any) -> None:
        self.bias = self.add_weight("bias", (self.units,), initializer="zeros")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        pixels = tf.round(x * (1.0 / self.scale) + self.center)  # exact integers 0..255
        planes = [tf.math.floormod(tf.floor(pixels * 2.0**-k), 2.0) for k in range(self.bits)]
        # b_k - 1/2 has the sign of s_k: the binary convolution's sign() turns it into s_k
        products = tf.split(super().call(tf.concat(planes, axis=0) - 0.5), self.bits, axis=0)
        weights = [self.scale * 2.0 ** (k - 1) for k in range(self.bits)]
        return tf.add_n([w * y for w, y in zip(weights, products, strict=True)]) + self.bias

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "bits": self.bits}


def centered_pixel_scale(scale: float, offset: float) -> float | None:
    """``scale`` when ``x = p · scale + offset`` maps 8-bit pixels to ``(p - 127.5) · scale``
    (the bit-plane identity then has no constant term); None otherwise."""
    return float(scale) if np.isclose(offset, -127.5 * scale, rtol=1e-12, atol=0) else None


# -- k-bit activations × few-level weights as sums of binary products (issue 16) --------
MAX_ACTIVATION_BITS = 4  # k <= 4: at most 4 binary products per weight plane
MAX_WEIGHT_LEVELS = 4  # binary, ternary, 2-bit uniform; at most 3 thermometer planes
LEVEL_RTOL = 1e-6  # values closer than this (× the channel's largest |w|) are one level


@dataclass(frozen=True)
class UniformGrid:
    """The levels ``o + δ m``, ``m = 0 … n−1``, of a uniform activation quantizer."""

    offset: float  # o, the lowest level
    step: float  # δ
    levels: int  # n

    @property
    def bits(self) -> int:
        """k = ⌈log2 n⌉: planes needed for the codes ``m``."""
        return max(1, int(np.ceil(np.log2(self.levels))))

    def coefficients(self, encoding: str = "binary") -> tuple[np.ndarray, float]:
        """``(c, d)`` with ``a = d + Σ_i c_i s_i``. Binary planes (the bits of ``m``):
        ``c_i = δ 2^(i−1)``, ``d = o + δ (2^k − 1)/2``. Thermometer planes
        ``s_t = sign(m − t + ½)``, ``t = 1 … n−1`` (``m = Σ_t (s_t + 1)/2``): every
        ``c_t = δ/2``, ``d = o + δ (n − 1)/2``."""
        if encoding == "thermometer":
            n = self.levels
            return np.full(n - 1, self.step / 2), self.offset + self.step * (n - 1) / 2
        k = self.bits
        c = self.step * 2.0 ** (np.arange(k) - 1.0)
        return c, self.offset + self.step * (2**k - 1) / 2

    def planes(self, encoding: str = "binary") -> int:
        """How many ±1 planes the encoding cuts: k, or n − 1."""
        return self.bits if encoding == "binary" else self.levels - 1

    def code(self, value: float) -> int | None:
        """``m`` with ``o + δ m = value``, or None when ``value`` is not a level."""
        m = (value - self.offset) / self.step
        if abs(m - round(m)) > 1e-4 or not 0 <= round(m) < self.levels:
            return None
        return int(round(m))


def _ordered(x: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys in the floats' order (−0 and +0 one apart, both between)."""
    b = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFF) - 1, b)


def _from_ordered(key: np.ndarray) -> np.ndarray:
    b = np.where(key < 0, (-(key + 1)) | -0x80000000, key).astype(np.int32)
    return b.view(np.float32)


def thermometer_edges(quantizer: Any, grid: UniformGrid) -> np.ndarray | None:
    """``e_t`` (t = 1 … n−1): the least float32 ``x`` whose code ``m`` under ``quantizer``
    is at least ``t``, found by bisection over the floats, so ``[m ≥ t] = [x − e_t ≥ 0]``
    exactly (a float subtraction is 0 only for equal operands, its sign is exact): the
    planes come from the layer's input without computing the quantizer (its clip, scale,
    round and rescale: 5-7 elementwise ops a layer in the flatbuffer). None where an edge
    is so small that flushing subnormal differences could flip a plane."""
    lo = np.full(grid.levels - 1, _ordered(np.float32(-1e6)))
    hi = np.full(grid.levels - 1, _ordered(np.float32(1e6)))
    t = np.arange(1, grid.levels)

    def reaches(key: np.ndarray) -> np.ndarray:
        a = np.asarray(quantizer(tf.constant(_from_ordered(key))), np.float64)
        return np.round((a - grid.offset) / grid.step) >= t

    if not reaches(hi).all() or reaches(lo).any():
        return None
    while np.any(hi - lo > 1):  # invariant: lo below the edge, hi at or above it
        mid = (lo + hi) // 2
        up = reaches(mid)
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    edges = _from_ordered(hi)
    return None if np.any(np.abs(edges) < 1e-30) else edges


PIXEL_LEVELS = 256  # the image: 8-bit pixels


def pixel_grid(scale: float) -> UniformGrid:
    """The centered 8-bit image ``x = (p − 127.5)·scale`` as a grid: its binary planes
    are the pixels' bit planes, and ``d = 0`` (no constant term, zero padding exact)."""
    return UniformGrid(-127.5 * scale, scale, PIXEL_LEVELS)


def uniform_grid(quantizer: Any) -> UniformGrid | None:
    """The grid of ``quantizer`` when, probed numerically, it maps every real number onto
    2..16 equally spaced levels, monotonically and deterministically; else None."""
    if quantizer is None:
        return None
    fine = np.linspace(-8, 8, 16001)
    probe = np.concatenate([[-1e6, -64.0], fine, [64.0, 1e6]]).astype(np.float32)
    try:
        out = np.asarray(quantizer(tf.constant(probe)), np.float64)
        again = np.asarray(quantizer(tf.constant(probe)), np.float64)
    except Exception:  # a quantizer that only works in a layer context: not a plain grid
        return None
    if out.shape != probe.shape or not np.array_equal(out, again) or np.any(np.diff(out) < 0):
        return None  # stochastic, not elementwise, or not monotone
    levels = np.unique(out)
    if not 2 <= len(levels) <= 2**MAX_ACTIVATION_BITS:
        return None
    step = (levels[-1] - levels[0]) / (len(levels) - 1)
    if not np.allclose(levels, levels[0] + step * np.arange(len(levels)), rtol=0, atol=1e-5 * step):
        return None
    return UniformGrid(float(levels[0]), float(step), len(levels))


def activation_planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """``s_i = 2 b_i − 1`` (int, ±1) for integer codes ``m``, stacked on a new first axis."""
    codes = np.asarray(codes, np.int64)
    return np.stack([2 * ((codes >> i) & 1) - 1 for i in range(bits)])


@dataclass
class WeightPlanes:
    """``W[..., c] = z_c + Σ_j y_jc S_j[..., c]``, every ``S_j ∈ {±1}``."""

    signs: np.ndarray  # (J, *kernel shape), ±1 float32
    scales: np.ndarray  # (J, C): y_jc
    offsets: np.ndarray  # (C,): z_c

    def reconstruct(self) -> np.ndarray:
        return self.offsets + np.einsum("j...c,jc->...c", self.signs, self.scales)


def channel_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(levels ascending, each value's level index): values within ``LEVEL_RTOL`` of the
    channel's largest magnitude are one level (float32 rounding, not a second level)."""
    order = np.sort(values.ravel())
    tol = LEVEL_RTOL * max(float(np.abs(order).max(initial=0.0)), 1e-30)
    starts = np.concatenate([[True], np.diff(order) > tol])
    groups = np.split(order, np.flatnonzero(starts)[1:])
    levels = np.array([g.mean(dtype=np.float64) for g in groups])
    index = np.abs(values[..., None] - levels).argmin(-1)
    return levels, index


def _channel_planes(levels: np.ndarray, index: np.ndarray) -> tuple[list, list, float]:
    """(planes ±1, their y_j, z) of one channel; see the module doc for the two codes."""
    n = len(levels)
    scale = max(float(np.abs(levels).max()), 1e-30)
    if n == 4 and abs((levels[3] - levels[2]) - (levels[1] - levels[0])) <= LEVEL_RTOL * scale:
        # l_3 − l_2 = l_1 − l_0: the levels are z ± y_1 ± y_2, planes the bits of the index
        planes = [2 * ((index >> 1) & 1) - 1, 2 * (index & 1) - 1]
        y = [(levels[2] - levels[0]) / 2, (levels[1] - levels[0]) / 2]
        return planes, y, (levels[0] + levels[3]) / 2
    planes = [np.where(index >= j, 1, -1) for j in range(1, n)]  # thermometer
    y = [(levels[j] - levels[j - 1]) / 2 for j in range(1, n)]
    return planes, y, (levels[0] + levels[-1]) / 2


def weight_planes(w_q: np.ndarray) -> WeightPlanes | str:
    """The ±1 planes of ``w_q`` (output channels on the last axis), or why there are none."""
    channels = w_q.shape[-1]
    per_channel = []
    for c in range(channels):
        levels, index = channel_levels(w_q[..., c])
        if len(levels) > MAX_WEIGHT_LEVELS:
            return f"weights have {len(levels)} levels in output channel {c} (> 4)"
        per_channel.append(_channel_planes(levels, index))
    count = max(1, max(len(p) for p, _, _ in per_channel))
    signs = np.ones((count, *w_q.shape), np.float32)  # unused planes: +1 with y = 0
    scales = np.zeros((count, channels), np.float32)
    offsets = np.zeros(channels, np.float32)
    for c, (planes, y, z) in enumerate(per_channel):
        for j, (plane, yj) in enumerate(zip(planes, y, strict=True)):
            signs[j, ..., c], scales[j, c] = plane, yj
        offsets[c] = z
    # an offset within rounding of the channel's scale is 0: no all-ones filter for it
    size = np.maximum(np.abs(w_q.reshape(-1, channels)).max(0), 1e-30)
    offsets[np.abs(offsets) <= LEVEL_RTOL * size] = 0.0
    return WeightPlanes(signs, scales, offsets)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after): what TensorFlow's SAME adds along one spatial axis."""
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


@tf.keras.utils.register_keras_serializable("bitlite")
class BitPlaneProduct(tf.keras.layers.Layer):
    """A k-bit-input, few-level-weight convolution (or dense layer, ``dense=True``: a 1×1
    convolution over ``(N,1,1,F)``) as binary products: see the module doc for the identity.

    ``conv`` is the serialized binary ``QuantConv2D`` over the ``J`` weight planes (filters
    ``J·C``, plus one all-ones filter when ``ones``); ``pads`` ((top, bottom), (left,
    right)) pad the quantized input with ``pad_value`` (a level) before the planes are cut.
    Weights: ``plane_scales`` (J, C) = ``y_jc``, ``ones_scale`` (C,) = ``z_c``, ``bias``
    (C,) = ``d·ΣW_c`` + the layer's bias.

    ``encoding`` (:mod:`pipeline.export.plane_cost`): ``"binary"`` stacks the k bit planes
    on the batch axis (k products, summed with weights ``c_i``); ``"thermometer"`` puts the
    ``n − 1`` equal planes side by side on the channel axis, and ``conv``'s kernel repeats
    the weight planes ``n − 1`` times along its input channels (one product).
    ``input_quantizer`` None: the input is on ``grid`` already (the image's pixels)."""

    def __init__(
        self,
        conv: dict[str, Any],
        input_quantizer: Any,
        grid: dict[str, Any],
        channels: int,
        weight_planes: int,
        ones: bool = False,
        pads: Any = None,
        pad_value: float = 0.0,
        dense: bool = False,
        activation: Any = None,
        encoding: str = "binary",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.conv = tf.keras.layers.deserialize(conv)
        # the quantizer object itself when given one: a user's function (custom gradient,
        # unregistered) computes the levels but cannot be serialized and looked up again
        self.input_quantizer = (
            input_quantizer if callable(input_quantizer) else lq.quantizers.get(input_quantizer)
        )
        self.grid = UniformGrid(**grid)
        self.encoding = encoding
        self.channels, self.weight_planes, self.ones = int(channels), int(weight_planes), ones
        self.pads = [list(map(int, p)) for p in pads] if pads else None
        self.pad_value, self.dense = float(pad_value), bool(dense)
        self.activation = tf.keras.activations.get(activation)
        self.edges = None  # thermometer planes cut from x itself (thermometer_edges)
        if encoding == "thermometer" and self.input_quantizer is not None:
            self.edges = thermometer_edges(self.input_quantizer, self.grid)

    def build(self, input_shape: Any) -> None:
        c, j = self.channels, self.weight_planes
        self.plane_scales = self.add_weight("plane_scales", (j, c))
        self.ones_scale = self.add_weight("ones_scale", (c,))
        self.bias = self.add_weight("bias", (c,), initializer="zeros")
        # thermometer planes sit side by side on the channel axis
        cin = int(input_shape[-1]) * (
            1 if self.encoding == "binary" else self.grid.planes(self.encoding)
        )
        if self.dense:
            self.conv.build((None, 1, 1, cin))
        else:
            h, w = (None if d is None else int(d) for d in input_shape[1:3])
            if self.pads:
                h = None if h is None else h + sum(self.pads[0])
                w = None if w is None else w + sum(self.pads[1])
            self.conv.build((None, h, w, cin))
        super().build(input_shape)

    def planes(self, x: tf.Tensor) -> tf.Tensor:
        """The input's planes, each with the sign of its ``s``: binary ``b_i − ½`` stacked
        on the batch axis, thermometer ``a − (o + δ (t − ½))`` (the sign of ``m − t + ½``)
        side by side on the channel axis."""
        if self.edges is not None:
            return self._thermometer_from_input(x)
        a = self.input_quantizer(x) if self.input_quantizer is not None else x
        if self.pads:
            a = tf.pad(
                a, [[0, 0], self.pads[0], self.pads[1], [0, 0]], constant_values=self.pad_value
            )
        if self.encoding == "thermometer":  # a − (o + δ (t − ½)): ±δ/2 at least, never 0
            t = np.arange(1, self.grid.levels) - 0.5
            edges = np.repeat(self.grid.offset + self.grid.step * t, int(a.shape[-1]))
            return tf.concat([a] * len(t), axis=-1) - edges.astype(np.float32)
        codes = tf.round((a - self.grid.offset) * (1.0 / self.grid.step))  # exact 0..n−1
        bits = [tf.math.floormod(tf.floor(codes * 2.0**-i), 2.0) for i in range(self.grid.bits)]
        return tf.concat(bits, axis=0) - 0.5

    def _thermometer_from_input(self, x: tf.Tensor) -> tf.Tensor:
        """``x − e_t`` side by side: the signs of ``m − t + ½`` without the quantizer; a
        padding level's code ``m`` pads ``x`` with an input of that code (``e_m``, or
        below ``e_1`` for the lowest)."""
        edges = self.edges
        if self.pads:
            m = self.grid.code(self.pad_value)
            fill = edges[m - 1] if m > 0 else np.nextafter(edges[0], np.float32(-np.inf))
            x = tf.pad(x, [[0, 0], self.pads[0], self.pads[1], [0, 0]],
                       constant_values=float(fill))  # fmt: skip
        cut = np.repeat(edges, int(x.shape[-1])).astype(np.float32)
        # + (−e): TFLite's broadcast ADD has a fast path; its SUB runs the slow one
        return tf.concat([x] * len(edges), axis=-1) + (-cut)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        if self.dense:
            x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
        c, _ = self.grid.coefficients(self.encoding)
        scales = tf.reshape(self.plane_scales, [-1])  # y_jc, filter by filter
        if self.ones:
            scales = tf.concat([scales, tf.ones([1])], axis=0)
        u = self.conv(self.planes(x))
        if self.encoding == "thermometer":  # one product: a per-filter multiplier
            u = u * (scales * float(c[0]))
        else:  # k products on the batch axis, weighted 2^i
            products = tf.split(u * scales, self.grid.bits, axis=0)
            u = tf.add_n([float(ci) * p for ci, p in zip(c, products, strict=True)])
        n = self.channels
        if self.weight_planes == 1 and not self.ones:  # no slice: a copy in the flatbuffer
            y = u
        else:
            y = tf.add_n([u[..., j * n : (j + 1) * n] for j in range(self.weight_planes)])
        if self.ones:
            y += u[..., -1:] * self.ones_scale
        y = self.activation(y + self.bias)
        return tf.reshape(y, [-1, n]) if self.dense else y

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "conv": tf.keras.layers.serialize(self.conv),
            "input_quantizer": lq.quantizers.serialize(self.input_quantizer)
            if self.input_quantizer is not None
            else None,
            "grid": asdict(self.grid),
            "channels": self.channels,
            "weight_planes": self.weight_planes,
            "ones": self.ones,
            "pads": self.pads,
            "pad_value": self.pad_value,
            "dense": self.dense,
            "activation": tf.keras.activations.serialize(self.activation),
            "encoding": self.encoding,
        }


def _plane_padding(layer: Any, grid: UniformGrid, encoding: str = "binary") -> tuple[Any, str, str]:
    """(explicit pads or None, the binary convolution's padding, why impossible or "")."""
    config = layer.get_config()
    if _kind(layer) == "dense" or config["padding"] == "valid":
        return None, "valid", ""
    _, d = grid.coefficients(encoding)
    pad_value = float(config.get("pad_values", 0.0))
    if grid.code(pad_value) is not None:  # pad the activation with a real level: VALID
        shape = layer.input_shape
        pads = [
            same_padding(int(shape[1 + ax]), int(config["kernel_size"][ax]),
                         int(config["strides"][ax]), int(config["dilation_rate"][ax]))
            for ax in (0, 1)
        ]  # fmt: skip
        return pads, "valid", ""
    # a = Σ c_i s_i (d = 0 up to rounding): zero-padded planes are a zero activation
    if abs(d) <= 1e-6 * grid.step and pad_value == 0:
        return None, "same", ""
    return None, "", f"padding value {pad_value} is not a level of the input's grid"


def _plane_reason(layer: Any, kind: str, image: bool = False) -> str:
    """Why ``layer`` cannot become binary products, or "" when it may (``image``: its
    input is the image on a known 8-bit grid, which needs no quantizer)."""
    if kind == "depthwise_conv2d":
        return "depthwise convolution (LCE has no binary depthwise kernel)"
    if type(layer) in CONV_FOR_DENSE or isinstance(layer, XnorConv2D):
        return "its output is rescaled by its input (XNOR-Net): not linear in the planes"
    if kind == "dense" and len(layer.input_shape) != 2:
        return "dense layer over a non-flat input"
    if kind == "conv2d" and layer.get_config().get("groups", 1) != 1:
        return "grouped convolution"
    if layer.input_quantizer is None and not image:
        return "input is not quantized (float activations or the image)"
    return ""


def _qualify(
    layer: Any, kind: str, w_q: np.ndarray, image_grid: UniformGrid | None = None
) -> tuple[UniformGrid, WeightPlanes] | str:
    """(input grid, weight planes), or why not. ``image_grid``: the layer reads the image,
    whose values lie on this grid (:func:`pixel_grid`)."""
    image = image_grid is not None and layer.input_quantizer is None
    reason = _plane_reason(layer, kind, image)
    if reason:
        return reason
    grid = image_grid if image else uniform_grid(layer.input_quantizer)
    if grid is None:
        return "input quantizer is not a uniform grid of at most 16 levels"
    planes = weight_planes(w_q)
    if isinstance(planes, str) and _weight_quantizer(layer) is None:
        return f"float weights ({planes}): the method keeps this layer in full precision"
    return planes if isinstance(planes, str) else (grid, planes)


def _weight_quantizer(layer: Any) -> Any:
    return getattr(layer, "depthwise_quantizer" if _kind(layer) == "depthwise_conv2d"
                   else "kernel_quantizer", None)  # fmt: skip


def layer_shape(layer: Any, kind: str, grid: UniformGrid, filters: int) -> plane_cost.LayerShape:
    """What :mod:`pipeline.export.plane_cost` needs of ``layer`` (per image)."""
    if kind == "dense":
        return plane_cost.LayerShape(int(layer.input_shape[-1]), 1, filters, 1, 1, grid.levels)
    (_, h, w, cin), (_, ho, wo, _) = layer.input_shape, layer.output_shape
    kh, kw = layer.get_config()["kernel_size"]
    return plane_cost.LayerShape(int(cin), kh * kw, filters, h * w, ho * wo, grid.levels)


def _encoding(
    layer: Any, kind: str, grid: UniformGrid, filters: int, plan: LayerPlan, force: str | None
) -> tuple[str, Any, str] | str:
    """(encoding, explicit pads, conv padding) — the forced one, else the cheaper that
    pads exactly — or why none does. Thermometer planes only for grids of 3…16 levels."""
    # 2 levels: both are the one sign plane; the image's 255 equal planes: never cheaper
    thermometer = 2 < grid.levels <= 2**MAX_ACTIVATION_BITS
    allowed = [e for e in plane_cost.ENCODINGS if e == "binary" or thermometer]
    shape = layer_shape(layer, kind, grid, filters)
    best, plan.costs = plane_cost.choose(shape, allowed)
    plan.kernel_bits = {e: plane_cost.kernel_bits(shape, e) for e in allowed}
    order = [force] if force in allowed else sorted(allowed, key=lambda e: e != best)
    why = ""
    for encoding in order:
        pads, padding, why = _plane_padding(layer, grid, encoding)
        if not why:
            plan.why_encoding = (
                "forced"
                if force in allowed
                else ("the cheaper" if encoding == best else "the only one padding exactly")
            )
            return encoding, pads, padding
    return why or f"encoding {force!r} is not possible for this layer"


# The binary convolution's name, by encoding: its tensors carry it into the flatbuffer (for
# people reading tensor names; tools.inspect recognises the encoding from the graph).
BCONV_NAMES = {"binary": "bconv", "thermometer": "bconv_thermometer"}


def _planes_conv(
    config: dict[str, Any], kind: str, filters: int, padding: str, encoding: str = "binary"
) -> Any:
    """The binary convolution over the planes: ±1 input and kernel (``ste_sign``), the
    layer's geometry (a dense layer: 1×1), no bias, nothing after it."""
    conv = {
        **config,
        "filters": filters,
        "padding": padding,
        "pad_values": 0.0,  # LCE's zero padding: used only where d = 0 (sign inputs)
        "use_bias": False,
        "activation": "linear",
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
        "kernel_constraint": None,
        "name": BCONV_NAMES[encoding],
    }
    if kind == "dense":
        conv.update(kernel_size=(1, 1), strides=(1, 1), dilation_rate=(1, 1), groups=1)
        conv.pop("units")
    return lq.layers.QuantConv2D.from_config(conv)


def _planes_kernel(planes: WeightPlanes, ones: bool, kind: str, repeat: int = 1) -> np.ndarray:
    """The ``J`` weight planes side by side on the filter axis (+ an all-ones filter),
    repeated ``repeat`` times along the input channels (one copy per thermometer plane)."""
    kernel = np.concatenate(list(planes.signs), axis=-1)
    if ones:
        kernel = np.concatenate([kernel, np.ones((*kernel.shape[:-1], 1), np.float32)], -1)
    kernel = np.concatenate([kernel] * repeat, axis=-2)
    return kernel.reshape(1, 1, *kernel.shape) if kind == "dense" else kernel


def _plane_rewrite(
    layer: Any,
    kind: str,
    w_q: np.ndarray,
    bias: list[np.ndarray],
    plan: LayerPlan,
    image_grid: UniformGrid | None = None,
    encoding: str | None = None,
) -> tuple[Any, list[np.ndarray]] | None:
    """The :class:`BitPlaneProduct` for ``layer`` and its weights; None (and
    ``plan.reason``) when the layer does not qualify. ``encoding``: force one
    (:data:`plane_cost.ENCODINGS`) where possible; None: the cheaper by the cost model."""
    qualified = _qualify(layer, kind, w_q, image_grid)
    if isinstance(qualified, str):
        plan.reason = qualified
        return None
    grid, planes = qualified
    ones = bool(np.any(planes.offsets != 0))
    j, channels = len(planes.signs), w_q.shape[-1]
    chosen = _encoding(layer, kind, grid, j * channels + int(ones), plan, encoding)
    if isinstance(chosen, str):
        plan.reason = chosen
        return None
    plan.encoding, pads, padding = chosen
    config = layer.get_config()
    conv = _planes_conv(config, kind, j * channels + int(ones), padding, plan.encoding)
    # a·W = d·ΣW + Σ_i c_i (s_i·W): the constant term joins the bias
    d = grid.coefficients(plan.encoding)[1]
    folded = d * w_q.reshape(-1, channels).sum(0, dtype=np.float64)
    folded += bias[0] if bias else 0.0
    quantizer = layer.input_quantizer
    new = BitPlaneProduct(
        tf.keras.layers.serialize(conv),
        quantizer,  # the object: a user's unregistered function survives
        asdict(grid),
        channels,
        j,
        ones=ones,
        pads=pads,
        pad_value=float(config.get("pad_values", 0.0)),
        dense=kind == "dense",
        activation=config["activation"],
        encoding=plan.encoding,
        name=layer.name,
    )
    plan.action = "planes->bconv"
    k = grid.planes(plan.encoding)
    plan.activation_planes, plan.weight_planes, plan.ones_filter = k, j, ones
    plan.products = k * (j + int(ones))
    repeat = 1 if plan.encoding == "binary" else k
    kernel = _planes_kernel(planes, ones, kind, repeat)
    return new, [planes.scales, planes.offsets, folded.astype(np.float32), kernel]


def fed_by_image(layer: Any, network: Any = None) -> bool:
    """True when ``layer``'s input in ``network`` is the network's input, only flattened or
    reshaped.

    A layer can hold several inbound nodes — a rewrite reuses untouched layers (Flatten,
    batch norm) in the model it builds, which adds one each time — so the walk follows
    the node that belongs to ``network``, not whichever came last."""
    reshapes = (tf.keras.layers.Flatten, tf.keras.layers.Reshape)
    while True:
        node = _own_node(layer, network)
        if node is None:
            return False
        parents = tf.nest.flatten(node.inbound_layers)
        if len(parents) != 1:
            return False
        layer = parents[0]
        if isinstance(layer, tf.keras.layers.InputLayer):
            return True
        if not isinstance(layer, reshapes):
            return False


def _own_node(layer: Any, network: Any) -> Any:
    """The inbound node of ``layer`` that ``network`` computes with (None: not exactly one)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    keys = getattr(network, "_network_nodes", None)
    if keys is not None:
        nodes = [n for i, n in enumerate(nodes) if f"{layer.name}_ib-{i}" in keys]
    return nodes[0] if len(nodes) == 1 else None


def _clips_anyway(quantizer: Any) -> bool:
    """True when ``quantizer(x) == quantizer(clip(x, 0, 1))`` for every x: a monotone
    quantizer constant below 0 and above 1 (DoReFa's, QNN's), checked on a probe."""
    if uniform_grid(quantizer) is None:
        return False
    probe = np.concatenate([[-1e6, -64.0], np.linspace(-4, 5, 9001), [64.0, 1e6]])
    probe = probe.astype(np.float32)
    q = np.asarray(quantizer(tf.constant(probe)))
    return bool(np.array_equal(q, np.asarray(quantizer(tf.constant(np.clip(probe, 0, 1))))))


def redundant_clip(layer: Any, network: Any) -> bool:
    """True for a ``ReLU(max_value=1)`` (clip to [0, 1]) whose every consumer in
    ``network`` is a quantized layer whose input quantizer clips to [0, 1] itself: the
    rewrite drops it (2 elementwise ops a layer in the flatbuffer; the thermometer planes
    compare the unclipped input with edges in (0, 1], the same signs)."""
    if not isinstance(layer, tf.keras.layers.ReLU):
        return False
    config = layer.get_config()
    if config.get("max_value") != 1.0 or config.get("threshold") or config.get("negative_slope"):
        return False
    keys = getattr(network, "_network_nodes", set())
    consumers = [
        node.outbound_layer
        for i, node in enumerate(layer._outbound_nodes)
        if any(k.startswith(f"{node.outbound_layer.name}_ib-") for k in keys)
    ]
    return bool(consumers) and all(
        _kind(c) is not None and _clips_anyway(getattr(c, "input_quantizer", None))
        for c in consumers
    )


def _binary_config(config: dict[str, Any], alpha: np.ndarray) -> dict[str, Any]:
    scaled = not np.all(alpha == 1.0)
    return {
        **config,
        "input_quantizer": "ste_sign",
        "kernel_constraint": None,
        "kernel_quantizer": "magnitude_aware_sign" if scaled else "ste_sign",
    }


def _binary_kernel(config: dict[str, Any], w_q: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The binary layer's config and kernel. The kernel quantizer normally stays: the
    converter folds it into the constant ±α_c filter that LCE bitpacks. A kernel of more
    than :data:`FOLD_LIMIT_BITS` is not folded, so LCE would see no constant filter and
    keep a float conv (XNOR-Net's 6×6×256×4096 layer, BinaryAlexNet's 9216×4096 dense):
    it is baked to the quantizer's output instead, a constant LCE matches as it is."""
    if w_q.size * 32 <= FOLD_LIMIT_BITS:
        return config, w_q
    quantizer = lq.quantizers.get(config["kernel_quantizer"])
    return {**config, "kernel_quantizer": None}, np.asarray(quantizer(tf.constant(w_q)))


UNKNOWN_GRID = (
    "reads the image, whose values are not known to lie on the centered 8-bit grid "
    "(p - 127.5)·s: not split into bit planes (for a model from elsewhere give "
    "--input-scale/--input-offset)"
)


IMAGE_PLANES_OFF = (
    "reads the image: on its 8 bit planes (8 binary products per weight plane) this layer "
    "measured 4-5x the aarch64 instructions of the int8 layer (benchmarks/results/kbit.md), "
    "so it stays int8 (prepare_for_lce(..., image_planes=True) splits it)"
)


def _rewrite_layer(
    layer: Any,
    image_input: bool = False,
    pixel_scale: float | None = None,
    encoding: str | None = None,
    image_planes: bool = False,
) -> tuple[Any, LayerPlan | None, list[np.ndarray] | None]:
    """(new layer, plan, weights to set once built); the layer itself when untouched.

    ``image_input``: the layer reads the image (see :func:`fed_by_image`); ``pixel_scale``:
    that image is 8-bit pixels ``p`` normalized as ``(p - 127.5) · pixel_scale`` (None:
    its value grid is unknown, so the bit-plane identity cannot be used)."""
    kind = _kind(layer)
    if kind is None:
        return layer, None, None
    w_q = effective_kernel(layer)
    bias = [layer.bias.numpy()] if layer.use_bias else []
    binary_in = is_sign(layer.input_quantizer)
    alpha = channel_scales(w_q) if kind != "depthwise_conv2d" else None
    config = layer.get_config()
    plan = LayerPlan(
        layer.name,
        kind,
        "baked",
        binary_in,
        alpha is not None,
        alpha is not None and not np.all(alpha == 1.0),
    )
    # a layer scaling by its input (XNOR-Net's β) is not linear in the planes: not split
    linear = type(layer) not in CONV_FOR_DENSE
    planes = image_input and linear and kind == "dense" and not binary_in and alpha is not None
    if planes and pixel_scale is None:
        plan.reason = UNKNOWN_GRID
        return _baked(layer, config), plan, [w_q, *bias]
    if planes:
        plan.action = "bit planes->1x1 bconv"
        config = {**_binary_config(config, alpha), "use_bias": False}
        conv = _dense_as_conv(config, lq.layers.QuantConv2D)
        new = BitPlaneDense(conv, scale=pixel_scale, name=layer.name)
        bias = bias or [np.zeros(w_q.shape[-1], np.float32)]
        return new, plan, [*bias, w_q.reshape(1, 1, *w_q.shape)]
    if binary_in and alpha is not None:
        config, kernel = _binary_kernel(_binary_config(config, alpha), w_q)
        if kind == "conv2d":
            plan.action = "bconv"
            # type(layer): a subclass (XnorConv2D) keeps its input-dependent scale
            return type(layer).from_config(config), plan, [kernel, *bias]
        if len(layer.input_shape) == 2:
            plan.action = "dense->1x1 bconv"
            conv_class = CONV_FOR_DENSE.get(type(layer), lq.layers.QuantConv2D)
            new = DenseAsBinaryConv(_dense_as_conv(config, conv_class), name=layer.name)
            return new, plan, [kernel.reshape(1, 1, *kernel.shape), *bias]
    # the image on its 8-bit grid: its bit planes are the input's planes (issue 16)
    image = image_input and pixel_scale is not None and layer.input_quantizer is None
    if image and not image_planes and not isinstance(weight_planes(w_q), str):
        plan.reason = IMAGE_PLANES_OFF  # measured: 4-5x the instructions of int8
        return _baked(layer, config), plan, [w_q, *bias]
    image_grid = pixel_grid(pixel_scale) if image else None
    planned = _plane_rewrite(layer, kind, w_q, bias, plan, image_grid, encoding)
    if planned is not None:
        return planned[0], plan, planned[1]
    unknown_image = image_input and pixel_scale is None and layer.input_quantizer is None
    if unknown_image and not isinstance(weight_planes(w_q), str):  # qualifies on a known grid
        plan.reason = UNKNOWN_GRID
    return _baked(layer, config), plan, [w_q, *bias]


def _dense_as_conv(config: dict[str, Any], conv_class: type) -> dict[str, Any]:
    """The serialized 1×1 convolution that computes dense layer ``config`` on (N,1,1,F)."""
    conv = {
        **config,
        "filters": config["units"],
        "kernel_size": (1, 1),
        "strides": (1, 1),
        "padding": "valid",
        "name": "bconv",
    }
    conv.pop("units")
    return tf.keras.layers.serialize(conv_class.from_config(conv))


def _baked(layer: Any, config: dict[str, Any]) -> Any:
    """The layer with its weight quantizer dropped (its weights are set to ``W_q``)."""
    if _kind(layer) == "depthwise_conv2d":
        config.update(depthwise_quantizer=None, depthwise_constraint=None)
    else:
        config.update(kernel_quantizer=None, kernel_constraint=None)
    return type(layer).from_config(config)


def inference_network(model: tf.keras.Model) -> tf.keras.Model:
    """The network that runs at inference: training-only wrappers (soft weight-sharing's
    mixture prior, which only adds a loss) expose it as ``network``."""
    inner = getattr(model, "network", None)
    return inner if isinstance(inner, tf.keras.Model) else model


def run_pixel_scale() -> float | None:
    """``pixel_scale`` of bitlite's own runs: their data layer's one normalization."""
    return centered_pixel_scale(PIXEL_SCALE, PIXEL_OFFSET)


def prepare_for_lce(
    model: tf.keras.Model,
    pixel_scale: float | None = None,
    encoding: str | dict[str, str] | None = None,
    image_planes: bool = False,
) -> tuple[tf.keras.Model, list[LayerPlan]]:
    """A copy of ``model`` with baked weights and binary layers in LCE's bitpackable form.

    ``pixel_scale``: the model's input is 8-bit pixels normalized as ``(p - 127.5) · s``
    (bitlite's runs: :func:`run_pixel_scale`); None when that is not known, which keeps
    the rewrites that depend on the input's values (bit planes) off. ``encoding``: the
    plane encoding of every k-bit layer where possible (``"binary"`` or
    ``"thermometer"``, for measurements; or one per layer name); None picks per layer
    by :mod:`plane_cost`: the cheaper, within its size budget (:func:`plane_cost.fit_size`).
    ``image_planes``: a first convolution (or non-binary dense layer) with few-level
    weights also runs on the image's 8 bit planes (all MACs binary, but slower: off by
    default; a binary dense layer on the image always does, see :class:`BitPlaneDense`).
    Inference outputs are unchanged (up to float32 summation order in the 1×1 rewrite).
    """
    rewritten, plans = _prepare(model, pixel_scale, encoding, image_planes)
    if encoding is not None:
        return rewritten, plans
    fitted = plane_cost.fit_size([
        plane_cost.Pick(p.layer, p.encoding, p.costs, p.kernel_bits)
        for p in plans if p.action == "planes->bconv"
    ])  # fmt: skip
    first = {p.layer: p for p in plans}
    if all(first[name].encoding == e for name, e in fitted.items()):
        return rewritten, plans
    rewritten, plans = _prepare(model, pixel_scale, fitted, image_planes)
    for p in plans:
        if p.layer not in fitted:
            continue
        p.why_encoding = first[p.layer].why_encoding
        if first[p.layer].encoding != p.encoding:
            bits = p.kernel_bits
            p.why_encoding = (
                f"the size budget: thermometer planes store the kernel "
                f"{bits['thermometer'] // bits['binary']}× ({bits['thermometer'] / 8192:,.1f} "
                f"KiB, not {bits['binary'] / 8192:,.1f}), over {plane_cost.SIZE_BUDGET:g}× "
                "the k-bit layers' bit planes"
            )
    return rewritten, plans


def _prepare(
    model: tf.keras.Model,
    pixel_scale: float | None,
    encoding: str | dict[str, str] | None,
    image_planes: bool,
) -> tuple[tf.keras.Model, list[LayerPlan]]:
    """:func:`prepare_for_lce` with ``encoding`` as given (None: each layer's cheaper)."""
    plans: list[LayerPlan] = []
    pending: list[tuple[Any, list[np.ndarray]]] = []
    network = inference_network(model)
    image_fed = {ly.name for ly in network.layers if fed_by_image(ly, network)}

    def clone(layer: Any) -> Any:
        if redundant_clip(layer, network):
            return tf.keras.layers.Activation("linear", name=layer.name)
        forced = encoding.get(layer.name) if isinstance(encoding, dict) else encoding
        new, plan, weights = _rewrite_layer(
            layer, layer.name in image_fed, pixel_scale, forced, image_planes
        )
        if plan is not None:
            plans.append(plan)
            pending.append((new, weights))
        return new

    rewritten = tf.keras.models.clone_model(network, clone_function=clone)
    for new, weights in pending:
        new.set_weights(weights)
    return rewritten, plans


def float_reference(model: tf.keras.Model) -> tf.keras.Model:
    """The same network, weights baked to ``W_q``, input quantizers kept: the function the
    Keras model computes, stored as float32 by the plain TFLite converter (``--baselines``)."""
    pending: list[tuple[Any, list[np.ndarray]]] = []

    def bake(layer: Any) -> Any:
        if _kind(layer) is None:
            return layer
        new = _baked(layer, layer.get_config())
        pending.append(
            (new, [effective_kernel(layer), *([layer.bias.numpy()] if layer.use_bias else [])])
        )
        return new

    baked = tf.keras.models.clone_model(inference_network(model), clone_function=bake)
    for new, weights in pending:
        new.set_weights(weights)
    return baked

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
  exactly ``β``.

Weights that are not binary (ternary, power-of-two, k-bit) stay float here and become
int8 in the flatbuffer (:mod:`pipeline.tflite.rewrite`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# isort: off
import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
import larq as lq
import tensorflow as tf
# isort: on

from pipeline.data.base import PIXEL_OFFSET, PIXEL_SCALE
from pipeline.layers.xnor import XnorConv2D, XnorDense

BINARY_RTOL = 1e-6  # |W_q| equal to α_c within this: float32 rounding, not a second level

# The convolution a binary dense layer becomes (1×1, over a reshaped input). A layer that
# scales its output by a function of its input needs the convolution that computes the
# same scale: dropping it changes every output (issue 5's xnor parity failure).
CONV_FOR_DENSE: dict[type, type] = {XnorDense: XnorConv2D}


@dataclass
class LayerPlan:
    """What the rewrite did to one quantized layer (goes into the export report)."""

    layer: str
    kind: str  # "conv2d" | "dense" | "depthwise_conv2d"
    action: str  # "bconv" | "dense->1x1 bconv" | "bit planes->1x1 bconv" | "baked" | "kept"
    binary_input: bool
    binary_weights: bool
    scaled: bool  # α_c != 1 (folded into LceBconv2d's multiplier)
    note: str = ""  # why a layer that could have been binary was not

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


def pixels_are_centered() -> bool:
    """True when bitlite's one preprocessing is centered (see :func:`centered_pixel_scale`)."""
    return centered_pixel_scale(PIXEL_SCALE, PIXEL_OFFSET) is not None


def fed_by_image(layer: Any) -> bool:
    """True when ``layer``'s input is the model's input, only flattened or reshaped."""
    reshapes = (tf.keras.layers.Flatten, tf.keras.layers.Reshape)
    while True:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) != 1:
            return False
        parents = tf.nest.flatten(nodes[0].inbound_layers)
        if len(parents) != 1:
            return False
        layer = parents[0]
        if isinstance(layer, tf.keras.layers.InputLayer):
            return True
        if not isinstance(layer, reshapes):
            return False


def _binary_config(config: dict[str, Any], alpha: np.ndarray) -> dict[str, Any]:
    scaled = not np.all(alpha == 1.0)
    return {
        **config,
        "input_quantizer": "ste_sign",
        "kernel_constraint": None,
        "kernel_quantizer": "magnitude_aware_sign" if scaled else "ste_sign",
    }


def _rewrite_layer(
    layer: Any, image_input: bool = False, pixel_scale: float | None = None
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
        plan.note = (
            "reads the image, whose values are not known to lie on the centered 8-bit grid "
            "(p - 127.5)·s: not split into bit planes (for a model from elsewhere give "
            "--input-scale/--input-offset)"
        )
    elif planes and pixel_scale is not None:
        plan.action = "bit planes->1x1 bconv"
        config = {**_binary_config(config, alpha), "use_bias": False}
        conv = _dense_as_conv(config, lq.layers.QuantConv2D)
        new = BitPlaneDense(conv, scale=pixel_scale, name=layer.name)
        bias = bias or [np.zeros(w_q.shape[-1], np.float32)]
        return new, plan, [*bias, w_q.reshape(1, 1, *w_q.shape)]
    if binary_in and alpha is not None:
        config = _binary_config(config, alpha)
        if kind == "conv2d":
            plan.action = "bconv"
            # type(layer): a subclass (XnorConv2D) keeps its input-dependent scale
            return type(layer).from_config(config), plan, [w_q, *bias]
        if len(layer.input_shape) == 2:
            plan.action = "dense->1x1 bconv"
            conv_class = CONV_FOR_DENSE.get(type(layer), lq.layers.QuantConv2D)
            new = DenseAsBinaryConv(_dense_as_conv(config, conv_class), name=layer.name)
            return new, plan, [w_q.reshape(1, 1, *w_q.shape), *bias]
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
    model: tf.keras.Model, pixel_scale: float | None = None
) -> tuple[tf.keras.Model, list[LayerPlan]]:
    """A copy of ``model`` with baked weights and binary layers in LCE's bitpackable form.

    ``pixel_scale``: the model's input is 8-bit pixels normalized as ``(p - 127.5) · s``
    (bitlite's runs: :func:`run_pixel_scale`); None when that is not known, which keeps
    the rewrites that depend on the input's values (bit planes) off.
    Inference outputs are unchanged (up to float32 summation order in the 1×1 rewrite).
    """
    plans: list[LayerPlan] = []
    pending: list[tuple[Any, list[np.ndarray]]] = []
    network = inference_network(model)
    image_fed = {ly.name for ly in network.layers if fed_by_image(ly)}

    def clone(layer: Any) -> Any:
        new, plan, weights = _rewrite_layer(layer, layer.name in image_fed, pixel_scale)
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

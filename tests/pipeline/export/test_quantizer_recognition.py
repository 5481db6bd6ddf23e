"""larq's quantizers — and users' own — are recognised by what they compute (issue 17).

Each case is one quantized convolution: the rewrite must pick the binary form its
quantizers allow (a plain binary convolution for sign × ±α weights, binary products for
other two- or few-level grids), keep Keras' outputs, and end as exactly one bitpacked
``LceBconv2d`` per layer after LCE's converter.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

tf = pytest.importorskip("tensorflow")
lq = pytest.importorskip("larq")

from pipeline.export import keras_rewrite as er  # noqa: E402


@tf.custom_gradient
def where_sign(x):
    """A user's sign, written with tf.where and an identity gradient: not larq's class."""
    return tf.where(x >= 0, 1.0, -1.0), lambda dy: dy


@tf.custom_gradient
def half_sign(x):
    """Two levels ±0.5: binary, on a scale larq never uses."""
    return tf.where(x >= 0, 0.5, -0.5), lambda dy: dy


def threshold(x):
    """Two levels {0, 1} at a threshold of 0.2 (a shifted Heaviside)."""
    return tf.cast(x > 0.2, tf.float32)


def scaled_sign(w):
    """Binary weights ±0.3 (tf.sign: never 0 on random weights)."""
    return 0.3 * tf.sign(w)


def _dorefa(k: int, mode: str = "activations"):
    return lq.quantizers.DoReFa(k_bit=k, mode=mode)


# name -> (input quantizer, kernel quantizer, (action, activation planes, weight planes))
CASES = {
    "ste_sign": ("ste_sign", "ste_sign", ("bconv", 0, 0)),
    "approx_sign": ("approx_sign", "ste_sign", ("bconv", 0, 0)),
    "swish_sign": ("swish_sign", "ste_sign", ("bconv", 0, 0)),
    "magnitude_aware_sign": ("ste_sign", "magnitude_aware_sign", ("bconv", 0, 0)),
    "ste_tern weights": ("ste_sign", "ste_tern", ("planes->bconv", 1, 2)),
    "ste_tern inputs": ("ste_tern", "ste_sign", ("planes->bconv", 2, 1)),
    "ste_heaviside inputs": ("ste_heaviside", "ste_sign", ("planes->bconv", 1, 1)),
    "ste_heaviside weights": ("ste_sign", "ste_heaviside", ("planes->bconv", 1, 1)),
    "dorefa inputs": (_dorefa(2), "magnitude_aware_sign", ("planes->bconv", 2, 1)),
    "dorefa weights": ("ste_sign", _dorefa(2, "weights"), ("planes->bconv", 1, 2)),
    "custom sign": (where_sign, "ste_sign", ("bconv", 0, 0)),
    "custom ±0.5 inputs": (half_sign, "ste_sign", ("planes->bconv", 1, 1)),
    "custom threshold inputs": (threshold, "ste_sign", ("planes->bconv", 1, 1)),
    "custom scaled weights": ("ste_sign", scaled_sign, ("bconv", 0, 0)),
}


def _layer(name: str, inputs: tf.Tensor) -> tf.Tensor:
    input_quantizer, kernel_quantizer, _ = CASES[name]
    layer = lq.layers.QuantConv2D(
        4, 3, padding="same", input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer, kernel_constraint=None, name=_name(name),
    )  # fmt: skip
    return layer(inputs)


def _name(case: str) -> str:
    return "q_" + "".join(c if c.isalnum() else "_" for c in case)


def _model(names: list[str]) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input((7, 7, 3))
    outputs = [tf.keras.layers.Flatten()(_layer(n, inputs)) for n in names]
    out = outputs[0] if len(outputs) == 1 else tf.keras.layers.Concatenate()(outputs)
    return tf.keras.Model(inputs, out)


def _inputs(n: int) -> np.ndarray:
    # beyond [0, 1] and [-1, 1]: every quantizer's clip and threshold is crossed
    return np.random.default_rng(1).uniform(-1.5, 1.5, (n, 7, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("case", list(CASES))
def test_quantizer_is_recognised_by_its_values(case):
    model = _model([case])
    # bit planes: recognition, not the encoding choice (test_plane_encoding.py), is tested
    rewritten, (plan,) = er.prepare_for_lce(model, encoding="binary")
    action, activation_planes, weight_planes = CASES[case][2]
    assert plan.action == action, plan.reason
    if action == "planes->bconv":
        assert (plan.activation_planes, plan.weight_planes) == (activation_planes, weight_planes)
    assert plan.scaled == (CASES[case][1] in ("magnitude_aware_sign", scaled_sign))  # ±α_c
    x = _inputs(16)
    want = model(x, training=False).numpy()
    np.testing.assert_allclose(rewritten(x, training=False), want, rtol=1e-5, atol=1e-5)


def test_a_quantizer_with_more_levels_or_noise_is_not_binary():
    """Numerical recognition must not take a look-alike: 32 levels, or a sign with noise."""
    assert er.uniform_grid(_dorefa(5)) is None
    assert not er.is_sign(lambda x: tf.sign(x) + tf.random.uniform(tf.shape(x), 0, 1e-3))
    assert er.uniform_grid(lambda x: tf.sign(x + tf.random.uniform(tf.shape(x), -1, 1))) is None


# ste_tern inputs apart: LCE 0.16's converter turned the quantizer's own clip/round ops
# into a file that differed on ~1/3 of the values (by up to 4). Since the planes are cut
# from the layer's input at exact float32 edges (keras_rewrite.thermometer_edges), those ops no
# longer reach the converter; this case checks that it stays so.
ALONE = ("ste_tern inputs",)


@pytest.mark.parametrize(
    "names",
    [
        pytest.param([c for c in CASES if c not in ALONE], id="recognised"),
        pytest.param(list(ALONE), id="ste_tern-inputs"),
    ],
)  # fmt: skip
def test_every_recognised_quantizer_becomes_one_lce_bconv_with_keras_outputs(names):
    """One model with the cases side by side (one conversion): as many ``LceBconv2d`` as
    cases, no int8 or float multiply left, and LCE's interpreter computes Keras' outputs."""
    import larq_compute_engine as lce

    from pipeline.export.exporter import lce_predict
    from pipeline.tflite.reader import read_model

    model = _model(names)
    rewritten, plans = er.prepare_for_lce(model)
    assert all("bconv" in p.action for p in plans)
    flatbuffer = lce.convert_keras_model(rewritten)  # in-process: no TensorFlow start-up
    fb = read_model(flatbuffer)
    assert fb.op_counts()["LceBconv2d"] == len(names)
    assert fb.macs().get("int8", 0) == 0 and fb.macs().get("float", 0) == 0
    x = _inputs(8)
    want = model(x, training=False).numpy()
    np.testing.assert_allclose(lce_predict(flatbuffer, x), want, rtol=1e-5, atol=2e-5)

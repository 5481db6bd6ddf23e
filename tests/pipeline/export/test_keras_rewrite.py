"""Keras-level rewrites: the rewritten model computes what the trained one computes."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

tf = pytest.importorskip("tensorflow")
lq = pytest.importorskip("larq")

from pipeline.export import keras_rewrite as er  # noqa: E402

rng = np.random.default_rng(0)


def test_sign_detection_is_numeric():
    assert er.is_sign(lq.quantizers.SteSign())
    assert er.is_sign(lq.quantizers.get("approx_sign"))  # same forward, other gradient
    assert not er.is_sign(lq.quantizers.SteTern())
    assert not er.is_sign(lq.quantizers.SteHeaviside())  # {0, 1}: not ±1
    assert not er.is_sign(None)


def test_channel_scales_accepts_only_one_magnitude_per_channel():
    signs = rng.choice([-1.0, 1.0], (3, 3, 8, 4)).astype(np.float32)
    alpha = np.array([0.5, 1.0, 2.0, 0.25], np.float32)
    np.testing.assert_array_equal(er.channel_scales(signs * alpha), alpha)
    tern = signs * rng.choice([0.0, 1.0], signs.shape).astype(np.float32)
    assert er.channel_scales(tern) is None
    assert er.channel_scales(signs * rng.uniform(1, 2, signs.shape).astype(np.float32)) is None


@pytest.mark.parametrize("kernel_quantizer", ["ste_sign", "magnitude_aware_sign"])
def test_binary_dense_becomes_a_1x1_binary_conv_with_the_same_outputs(kernel_quantizer):
    x = inputs = tf.keras.Input((200,))
    layer = lq.layers.QuantDense(
        48, input_quantizer="ste_sign", use_bias=True, kernel_quantizer=kernel_quantizer
    )
    model = tf.keras.Model(inputs, layer(x))
    layer.bias.assign(rng.normal(size=48).astype(np.float32))
    data = rng.normal(size=(256, 200)).astype(np.float32)
    rewritten, plans = er.prepare_for_lce(model)
    assert [p.action for p in plans] == ["dense->1x1 bconv"]
    assert plans[0].scaled == (kernel_quantizer == "magnitude_aware_sign")
    (new,) = [ly for ly in rewritten.layers if isinstance(ly, er.DenseAsBinaryConv)]
    assert new.conv.kernel.shape == (1, 1, 200, 48)
    np.testing.assert_allclose(
        rewritten.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6, atol=1e-4
    )


def test_non_binary_layers_are_baked_and_the_float_reference_matches():
    x = inputs = tf.keras.Input((6, 6, 3))
    x = lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_tern", use_bias=False)(x)
    x = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    model = tf.keras.Model(inputs, x)
    data = rng.normal(size=(64, 6, 6, 3)).astype(np.float32)
    rewritten, plans = er.prepare_for_lce(model)
    assert [p.action for p in plans] == ["baked", "bconv"]
    baked = rewritten.layers[1]
    assert baked.kernel_quantizer is None
    assert set(np.unique(baked.kernel.numpy() / np.abs(baked.kernel.numpy()).max())) <= {-1, 0, 1}
    for other in (rewritten, er.float_reference(model)):
        np.testing.assert_allclose(
            other.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6, atol=1e-5
        )


def test_xnor_layers_keep_their_input_scale_through_the_rewrite():
    """Regression (issue 5): the rewrite made XnorConv2D / XnorDense plain larq layers,
    dropping XNOR-Net's K (conv) and β (dense); the .tflite then agreed with Keras on as
    few as 3 % of argmax on a tiny xnor net. K varies per sample and position, so outputs
    scaled by it differ from unscaled ones far beyond float rounding."""
    from pipeline.layers.xnor import XnorConv2D, XnorDense

    quant = {"input_quantizer": "ste_sign", "kernel_quantizer": "magnitude_aware_sign"}
    x = inputs = tf.keras.Input((7, 7, 3))
    x = XnorConv2D(8, 3, padding="same", use_bias=False, name="xconv", **quant)(x)
    # a BN shift, as in the real nets: a border output of zero-padded ±1 sums can be 0,
    # and sign(±1 ulp) of it would flip with float32 summation order alone
    bn = tf.keras.layers.BatchNormalization(name="bn")
    x = tf.keras.layers.Flatten()(bn(x))
    x = XnorDense(5, use_bias=False, name="xdense", **quant)(x)
    model = tf.keras.Model(inputs, x)
    bn.set_weights([np.ones(8), rng.normal(0, 0.3, 8), np.zeros(8), np.ones(8)])
    data = rng.normal(size=(64, 7, 7, 3)).astype(np.float32)
    rewritten, plans = er.prepare_for_lce(model)
    assert [(p.action, p.scaled) for p in plans] == [("bconv", True), ("dense->1x1 bconv", True)]
    assert isinstance(rewritten.get_layer("xconv"), XnorConv2D)
    assert isinstance(rewritten.get_layer("xdense").conv, XnorConv2D)  # 1×1: K = β exactly
    np.testing.assert_allclose(
        rewritten.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-5, atol=1e-5
    )


def _image_mlp(first: type, **first_kwargs) -> tf.keras.Model:
    """Flatten → binary-weight dense on real pixels (bias) → BN → binary dense."""
    x = inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(x)
    x = first(64, kernel_quantizer="magnitude_aware_sign", name="first", **first_kwargs)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    quant = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"}
    x = lq.layers.QuantDense(10, name="last", **quant)(x)
    return tf.keras.Model(inputs, x)


def _pixels(n: int) -> np.ndarray:
    from pipeline.data import normalize

    return normalize(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8))


def test_binary_dense_on_the_image_is_computed_on_its_bit_planes():
    """Issue 5: a binary MLP's first layer (binary weights, real pixels) was stored int8;
    split into 8 ±1 planes it becomes bitpacked, and the sum of the planes' binary
    products with weights 2^(k-1)/127.5 is exactly the original product."""
    from pipeline.export.convert import convert_model
    from pipeline.export.exporter import lce_predict
    from pipeline.tflite.reader import read_model

    model = _image_mlp(lq.layers.QuantDense, use_bias=True)
    model.get_layer("first").bias.assign(rng.normal(size=64).astype(np.float32))
    data = _pixels(300)
    rewritten, plans = er.prepare_for_lce(model, er.run_pixel_scale())
    assert [p.action for p in plans] == ["bit planes->1x1 bconv", "dense->1x1 bconv"]
    reference = model.predict(data, verbose=0)
    np.testing.assert_allclose(rewritten.predict(data, verbose=0), reference, atol=1e-4)
    flatbuffer = convert_model(model, pixel_scale=er.run_pixel_scale())
    fb = read_model(flatbuffer)
    assert fb.op_counts()["LceBconv2d"] == 2
    assert "FULLY_CONNECTED" not in fb.op_counts()
    assert [w.dtype for w in fb.weights()] == ["int32", "int32"]  # both bitpacked
    assert (lce_predict(flatbuffer, data).argmax(1) == reference.argmax(1)).all()


def test_bit_planes_only_for_linear_layers_reading_the_image():
    from pipeline.layers.xnor import XnorDense

    assert er.pixels_are_centered()  # the identity needs (p - 127.5)·scale
    _, plans = er.prepare_for_lce(_image_mlp(XnorDense, use_bias=False), er.run_pixel_scale())
    assert plans[0].action == "baked"  # β depends on the input: not linear in the planes
    x = inputs = tf.keras.Input((784,))
    x = tf.keras.layers.Dense(32)(x)
    x = lq.layers.QuantDense(8, kernel_quantizer="ste_sign")(x)
    _, plans = er.prepare_for_lce(tf.keras.Model(inputs, x), er.run_pixel_scale())
    assert [p.action for p in plans] == ["baked"]  # fed by a layer, not the image


def test_no_bit_planes_when_the_input_grid_is_unknown():
    """Issue 17: a model from elsewhere fed x = p / 255 gave wrong outputs on 1 input in 4
    when split into planes of (p - 127.5)/127.5; with no known grid the layer stays as it
    is (int8 in the file) and the plan says why."""
    model = _image_mlp(lq.layers.QuantDense, use_bias=True)
    assert er.centered_pixel_scale(1 / 255, 0.0) is None
    _, plans = er.prepare_for_lce(model, er.centered_pixel_scale(1 / 255, 0.0))
    assert plans[0].action == "baked" and "8-bit grid" in plans[0].note
    _, plans = er.prepare_for_lce(model, er.centered_pixel_scale(2 / 255, -1.0))
    assert plans[0].action == "bit planes->1x1 bconv"

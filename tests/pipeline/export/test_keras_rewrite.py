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

    assert er.run_pixel_scale() is not None  # the identity needs (p - 127.5)·scale
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
    assert plans[0].action == "baked" and "8-bit grid" in plans[0].reason
    _, plans = er.prepare_for_lce(model, er.centered_pixel_scale(2 / 255, -1.0))
    assert plans[0].action == "bit planes->1x1 bconv"


# -- k-bit activations × few-level weights as binary products (issue 16) ----------------
def _dorefa(k: int):
    return lq.quantizers.DoReFa(k_bit=k, mode="activations")


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_activation_planes_sum_to_the_code_in_integers(k):
    """``Σ_i 2^i s_i = 2m − (2^k − 1)``, so ``Σ_r m_r W_r = (Σ_i 2^i (s_i·W) + (2^k−1) ΣW)/2``
    for integer weights: checked in int64, no rounding anywhere."""
    codes = rng.integers(0, 2**k, (64, 50))
    s = er.activation_planes(codes, k)
    assert s.shape == (k, 64, 50) and set(np.unique(s)) <= {-1, 1}
    weights = 2 ** np.arange(k).reshape(-1, 1, 1)
    np.testing.assert_array_equal((weights * s).sum(0), 2 * codes - (2**k - 1))
    w = rng.integers(-7, 8, (50, 9))
    lhs = codes @ w
    rhs = sum(2**i * (s[i] @ w) for i in range(k)) + (2**k - 1) * w.sum(0)
    np.testing.assert_array_equal(2 * lhs, rhs)


@pytest.mark.parametrize(
    ("levels", "planes"),
    [([-1, 1], 1), ([-1, 0, 1], 2), ([-3, -1, 1, 3], 2), ([-2, 0, 3], 2), ([-5, -1, 0, 3], 3)],
)
def test_weight_planes_rebuild_integer_levels_exactly(levels, planes):
    """Binary ``α S``, ternary ``(S_1 + S_2)/2``, 2-bit ``(2 S_1 + S_2)/3`` (here ×3),
    TTQ's asymmetric ``{−W_n, 0, W_p}`` (an offset ``z``) and a non-uniform 4-level set
    (three thermometer planes): integer levels rebuild bit for bit."""
    w = rng.choice(levels, (3, 3, 8, 6)).astype(np.float32)
    w[0, 0, : len(levels), :] = np.reshape(levels, (-1, 1))  # every level in every channel
    split = er.weight_planes(w)
    assert not isinstance(split, str)
    assert len(split.signs) == planes and set(np.unique(split.signs)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(split.reconstruct(), w)
    if levels == [-1, 0, 1]:  # ternary = (S_1 + S_2)/2 exactly
        np.testing.assert_array_equal(split.signs.sum(0), 2 * w)
    if levels == [-3, -1, 1, 3]:  # 2-bit = 2 S_1 + S_2
        np.testing.assert_array_equal(2 * split.signs[0] + split.signs[1], w)
    assert np.any(split.offsets != 0) == (sum(levels[:: len(levels) - 1]) != 0)


def test_weight_planes_with_per_channel_scales_and_too_many_levels():
    alpha = rng.uniform(0.1, 3, 16).astype(np.float32)
    w = rng.choice([-1.0, 0.0, 1.0], (5, 5, 4, 16)).astype(np.float32) * alpha
    split = er.weight_planes(w)
    np.testing.assert_allclose(split.reconstruct(), w, rtol=1e-6, atol=0)
    np.testing.assert_allclose(split.scales, np.stack([alpha / 2, alpha / 2]), rtol=1e-6)
    assert not np.any(split.offsets)
    five = rng.choice([-1.0, 1.0], (40, 3)).astype(np.float32)
    five[:5, 1] = [-2, -1, 0, 1, 2]  # only channel 1 has 5 levels
    assert er.weight_planes(five) == "weights have 5 levels in output channel 1 (> 4)"


def test_uniform_grids_and_their_plane_constants():
    """DoReFa ``{m/(2^k−1)}``, QNN's ``LinearQuant`` ``{−1, −½, 0, ½}`` and sign ``{±1}``;
    every level equals ``d + Σ_i c_i s_i`` of its code's planes."""
    from pipeline.quantizers.linear import LinearQuant
    from pipeline.quantizers.log import LogQuant

    cases = {
        **{f"dorefa{k}": (_dorefa(k), 0.0, 1 / (2**k - 1), 2**k) for k in (1, 2, 3, 4)},
        "qnn2": (LinearQuant(2), -1.0, 0.5, 4),
        "qnn4": (LinearQuant(4), -1.0, 0.125, 16),
        "sign": (lq.quantizers.SteSign(), -1.0, 2.0, 2),
    }
    for name, (quantizer, offset, step, n) in cases.items():
        grid = er.uniform_grid(quantizer)
        assert grid is not None, name
        assert (grid.levels, grid.bits) == (n, int(np.log2(n))), name
        np.testing.assert_allclose([grid.offset, grid.step], [offset, step], rtol=1e-6)
        c, d = grid.coefficients()
        codes = np.arange(n)
        rebuilt = d + np.tensordot(c, er.activation_planes(codes, grid.bits), 1)
        np.testing.assert_allclose(rebuilt, offset + step * codes, rtol=0, atol=1e-6)
    assert er.uniform_grid(LinearQuant(2)).code(0.0) == 2  # QNN pads with a real level
    assert er.uniform_grid(lq.quantizers.SteSign()).coefficients()[1] == 0  # no constant
    assert er.uniform_grid(LogQuant(3, 0, "2", signed=False)) is None  # not uniform
    assert er.uniform_grid(_dorefa(5)) is None  # 32 levels: k > 4
    assert er.uniform_grid(None) is None


def _kbit_layer(quantizer, weights: str, scaled: bool, padding: str = "same", **kwargs):
    """One quantized convolution (or ``dense=True``) on a (9,9,3) / (20,) input whose
    kernel holds exactly the given weight levels (per-channel scales when ``scaled``)."""
    dense = kwargs.pop("dense", False)
    x = inputs = tf.keras.Input((20,) if dense else (9, 9, 3))
    if dense:
        layer = lq.layers.QuantDense(6, input_quantizer=quantizer, name="k", **kwargs)
    else:
        layer = lq.layers.QuantConv2D(
            6, 3, padding=padding, input_quantizer=quantizer, name="k", **kwargs
        )
    model = tf.keras.Model(inputs, layer(x))
    levels = {
        "binary": [-1.0, 1.0],
        "ternary": [-1.0, 0.0, 1.0],
        "2bit": [-1.0, -1 / 3, 1 / 3, 1.0],
        "ttq": [-0.6, 0.0, 1.3],
    }[weights]
    shape = layer.kernel.shape
    alpha = rng.uniform(0.2, 2.0, shape[-1]) if scaled else np.ones(shape[-1])
    layer.kernel.assign((rng.choice(levels, shape) * alpha).astype(np.float32))
    if layer.use_bias:
        layer.bias.assign(rng.normal(size=shape[-1]).astype(np.float32))
    return model


def _inputs(model, n: int = 16) -> np.ndarray:
    # beyond [0, 1] on both sides: the quantizer's clip is part of what is checked
    return rng.uniform(-0.5, 1.5, (n, *model.input_shape[1:])).astype(np.float32)


# every k meets every weight kind once, and each of them every (scales, padding) pair once
_SCALES_PADDING = ((False, "same"), (True, "valid"), (True, "same"))
KBIT_CASES = [
    (k, weights, *_SCALES_PADDING[(i + j) % 3])
    for i, k in enumerate((2, 3, 4))
    for j, weights in enumerate(("binary", "ternary", "2bit"))
]


@pytest.mark.parametrize(("k", "weights", "scaled", "padding"), KBIT_CASES)
def test_kbit_layer_becomes_binary_products_with_the_same_outputs(k, weights, scaled, padding):
    model = _kbit_layer(_dorefa(k), weights, scaled, padding)
    rewritten, (plan,) = er.prepare_for_lce(model, encoding="binary")
    assert plan.encoding == "binary" and set(plan.costs) == {"binary", "thermometer"}
    planes = 1 if weights == "binary" else 2
    assert (plan.action, plan.activation_planes, plan.weight_planes) == ("planes->bconv", k, planes)
    assert plan.products == k * planes and not plan.ones_filter
    new = rewritten.get_layer("k")
    assert isinstance(new, er.BitPlaneProduct) and new.conv.padding == "valid"
    assert new.conv.filters == planes * 6
    data = _inputs(model)
    want = model(data, training=False).numpy()
    np.testing.assert_allclose(rewritten(data, training=False), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("quantizer", "weights", "kwargs"),
    [
        ("qnn", "2bit", {"strides": 2}),  # o = −1: padding with the level 0 (code 2)
        ("sign", "ternary", {}),  # d = 0: LCE's own zero padding of the planes is exact
        ("sign", "ttq", {"use_bias": False}),  # z ≠ 0: the all-ones filter
        ("dorefa2", "ttq", {"dense": True}),
        ("qnn", "ternary", {"dense": True, "activation": "relu"}),
    ],
)
def test_other_grids_offsets_and_dense_layers(quantizer, weights, kwargs):
    from pipeline.quantizers.linear import LinearQuant

    q = {"qnn": LinearQuant(2), "sign": "ste_sign", "dorefa2": _dorefa(2)}[quantizer]
    model = _kbit_layer(q, weights, True, **kwargs)
    rewritten, (plan,) = er.prepare_for_lce(model)
    assert plan.action == "planes->bconv"
    assert plan.ones_filter == (weights == "ttq")
    new = rewritten.get_layer("k")
    assert (new.conv.padding == "same") == (quantizer == "sign" and "dense" not in kwargs)
    data = _inputs(model)
    want = model(data, training=False).numpy()
    np.testing.assert_allclose(rewritten(data, training=False), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation"),
    [(8, 3, 2, 1), (9, 3, 2, 1), (8, 4, 1, 1), (7, 3, 1, 2), (10, 5, 3, 1)],
)
def test_same_padding_is_tensorflows(size, kernel, stride, dilation):
    """Explicit padding + VALID equals SAME, asymmetric cases included (even sizes,
    strides, even kernels: TensorFlow puts the odd pixel after)."""
    x = tf.constant(rng.normal(size=(1, size, size, 1)).astype(np.float32))
    w = tf.constant(rng.normal(size=(kernel, kernel, 1, 1)).astype(np.float32))
    before, after = er.same_padding(size, kernel, stride, dilation)
    padded = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
    conv = {"strides": stride, "dilations": dilation}
    np.testing.assert_allclose(
        tf.nn.conv2d(padded, w, padding="VALID", **conv),
        tf.nn.conv2d(x, w, padding="SAME", **conv),
        rtol=1e-5,
        atol=1e-5,
    )


def test_binary_products_layer_round_trips_through_its_config():
    from pipeline.quantizers.linear import LinearQuant

    model = _kbit_layer(LinearQuant(2), "ttq", True, "same", strides=2)
    rewritten, _ = er.prepare_for_lce(model)
    layer = rewritten.get_layer("k")
    copy = er.BitPlaneProduct.from_config(layer.get_config())
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    data = _inputs(model)
    np.testing.assert_array_equal(copy(data), layer(data))
    assert copy.pads == layer.pads == [[1, 1], [1, 1]] and copy.ones  # SAME, 9 → 5


def test_zero_padding_of_a_kbit_activation_is_not_a_zero_plane(monkeypatch):
    """DoReFa's ``a = ½ + Σ c_i s_i`` (2 bits): a zero-padded plane stands for ``a = ½``,
    not 0. Padding the planes (LCE's SAME) instead of the activation shifts every border
    output by ``½ Σ W`` over the padded taps; the explicit padding keeps it exact."""
    model = _kbit_layer(_dorefa(2), "binary", True, "same", use_bias=False)
    data = _inputs(model)
    want = model(data, training=False).numpy()
    exact, _ = er.prepare_for_lce(model, encoding="binary")
    np.testing.assert_allclose(exact(data, training=False), want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(er, "_plane_padding", lambda layer, grid, *_: (None, "same", ""))
    naive = er.prepare_for_lce(model, encoding="binary")[0](data, training=False).numpy()
    border = np.abs(naive - want)
    assert border[:, 1:-1, 1:-1].max() < 1e-5  # the interior is the same
    assert border[:, 0].min() > 0.0 and border.max() > 0.1  # every border output is off


def test_layers_that_cannot_be_binary_stay_and_say_why():
    from pipeline.quantizers.log import LogQuant

    x = inputs = tf.keras.Input((8, 8, 2))
    x = lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign", name="first")(x)
    x = lq.layers.QuantConv2D(4, 3, input_quantizer=LogQuant(3, 0, "2", signed=False), name="log")(
        x
    )
    x = lq.layers.QuantConv2D(4, 3, input_quantizer=_dorefa(2), name="float_w")(x)
    model = tf.keras.Model(inputs, x)
    model.get_layer("float_w").kernel.assign(rng.normal(size=(3, 3, 4, 4)).astype(np.float32))
    _, plans = er.prepare_for_lce(model)
    assert [p.action for p in plans] == ["baked"] * 3
    reasons = {p.layer: p.reason for p in plans}
    assert reasons["first"] == er.UNKNOWN_GRID  # the image: its bit planes need its grid
    assert reasons["log"] == "input quantizer is not a uniform grid of at most 16 levels"
    assert reasons["float_w"] == (
        "float weights (weights have 36 levels in output channel 0 (> 4)): the method keeps "
        "this layer in full precision"
    )


def test_binary_products_run_on_lces_interpreter_as_in_keras():
    """Each case as one output of one model (one LCE conversion): every decomposed layer
    becomes ONE ``LceBconv2d`` (planes on the batch axis), nothing else multiplies, and
    LCE's interpreter computes what Keras computes, border outputs included."""
    import larq_compute_engine as lce

    from pipeline.export.exporter import lce_predict
    from pipeline.quantizers.linear import LinearQuant
    from pipeline.tflite.reader import read_model

    cases = [
        (_dorefa(2), "binary", {}),
        (_dorefa(3), "ternary", {"padding": "valid"}),
        (_dorefa(4), "2bit", {"strides": 2}),
        (LinearQuant(2), "2bit", {}),
        ("ste_sign", "ttq", {}),
        (_dorefa(2), "ternary", {"dense": True}),
    ]
    x = inputs = tf.keras.Input((9, 9, 3))
    outputs = []
    for i, (quantizer, weights, kwargs) in enumerate(cases):
        dense = kwargs.get("dense", False)
        single = _kbit_layer(quantizer, weights, True, **kwargs)
        layer = single.get_layer("k")
        layer._name = f"k{i}"
        y = tf.keras.layers.Flatten()(x) if dense else x
        y = tf.keras.layers.Dense(20)(y) if dense else y  # a float layer: (N, 20)
        outputs.append(tf.keras.layers.Flatten()(layer(y)))
    model = tf.keras.Model(inputs, tf.keras.layers.Concatenate()(outputs))
    rewritten, plans = er.prepare_for_lce(model)
    assert [p.action for p in plans] == ["planes->bconv"] * len(cases)
    flatbuffer = lce.convert_keras_model(rewritten)  # in-process: no TensorFlow start-up
    fb = read_model(flatbuffer)
    assert fb.op_counts()["LceBconv2d"] == len(cases)
    assert fb.macs()["int8"] == 0
    data = _inputs(model, 32)
    want = model(data, training=False).numpy()
    np.testing.assert_allclose(lce_predict(flatbuffer, data), want, rtol=1e-5, atol=2e-5)


def test_rewriting_the_same_model_twice_plans_the_same():
    """The rewrite reuses untouched layers (adding inbound nodes to them); the export
    rewrites the user's model object in-process, maybe more than once (fallbacks, several
    exports): the image-fed layer must still be found the second time."""
    model = _image_mlp(lq.layers.QuantDense, use_bias=True)
    first = [p.action for p in er.prepare_for_lce(model, er.run_pixel_scale())[1]]
    second = [p.action for p in er.prepare_for_lce(model, er.run_pixel_scale())[1]]
    assert first == second == ["bit planes->1x1 bconv", "dense->1x1 bconv"]


def test_kernels_too_large_to_fold_are_baked_as_constant_binary_filters(monkeypatch):
    """XNOR-Net's 6×6×256×4096 kernel is past TensorFlow's constant-folding limit: with its
    quantizer in the graph LCE saw no constant filter and kept a float conv (321 MB).
    Baked to the quantizer's own ±α_c output, the filter is a constant LCE bitpacks."""
    import larq_compute_engine as lce

    from pipeline.tflite.reader import read_model

    x = inputs = tf.keras.Input((6, 6, 16))
    conv = lq.layers.QuantConv2D(32, 6, input_quantizer="ste_sign",
                                 kernel_quantizer="magnitude_aware_sign")  # fmt: skip
    x = lq.layers.QuantDense(8, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(
        tf.keras.layers.Flatten()(conv(x))
    )
    model = tf.keras.Model(inputs, x)
    # a bias off the ±α_c grid: no sum lands on 0, where float rounding picks the sign
    conv.bias.assign(rng.normal(size=32).astype(np.float32))
    data = rng.normal(size=(64, 6, 6, 16)).astype(np.float32)
    kept, _ = er.prepare_for_lce(model)  # small kernels: the converter folds the quantizer
    assert all(ly.kernel_quantizer is not None for ly in _binary_convs(kept))
    monkeypatch.setattr(er, "FOLD_LIMIT_BITS", 0)  # as if every kernel were too large
    rewritten, plans = er.prepare_for_lce(model)
    assert [p.action for p in plans] == ["bconv", "dense->1x1 bconv"]
    convs = _binary_convs(rewritten)
    assert [ly.kernel_quantizer for ly in convs] == [None, None]
    w = convs[0].kernel.numpy().reshape(-1, 32)
    assert np.all(np.abs(w) == np.abs(w).max(axis=0))  # exactly ±α_c per channel
    np.testing.assert_allclose(rewritten.predict(data, verbose=0),
                               model.predict(data, verbose=0), rtol=1e-5, atol=1e-4)  # fmt: skip
    ops = read_model(lce.convert_keras_model(rewritten)).op_counts()
    assert ops["LceBconv2d"] == 2 and "CONV_2D" not in ops and "FULLY_CONNECTED" not in ops


def _binary_convs(model: tf.keras.Model) -> list:
    found = []
    for layer in model.layers:
        inner = layer.conv if isinstance(layer, er.DenseAsBinaryConv) else layer
        if isinstance(inner, lq.layers.QuantConv2D):
            found.append(inner)
    return found

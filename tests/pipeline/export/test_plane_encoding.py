"""Plane encodings of k-bit layers (binary bit planes or thermometer planes) and the
image's bit planes under a first layer with few-level weights (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

tf = pytest.importorskip("tensorflow")
lq = pytest.importorskip("larq")

from pipeline.export import keras_rewrite as er  # noqa: E402
from pipeline.export import plane_cost  # noqa: E402

rng = np.random.default_rng(1)
LEVELS = {
    "binary": [-1.0, 1.0],
    "ternary": [-1.0, 0.0, 1.0],
    "2bit": [-1.0, -1 / 3, 1 / 3, 1.0],
    "ttq": [-0.6, 0.0, 1.3],
}
WEIGHT_PLANES = {"binary": 1, "ternary": 2, "2bit": 2, "ttq": 2}


def _dorefa(k: int):
    return lq.quantizers.DoReFa(k_bit=k, mode="activations")


def _set_levels(layer, weights: str, scaled: bool = True) -> None:
    shape = layer.kernel.shape
    alpha = rng.uniform(0.2, 2.0, shape[-1]) if scaled else np.ones(shape[-1])
    layer.kernel.assign((rng.choice(LEVELS[weights], shape) * alpha).astype(np.float32))
    if layer.use_bias:
        layer.bias.assign(rng.normal(size=shape[-1]).astype(np.float32))


def _layer_model(quantizer, weights: str, shape=(9, 9, 3), dense=False, filters=6, **kwargs):
    """One quantized layer named ``k`` whose kernel holds exactly ``weights``' levels."""
    x = inputs = tf.keras.Input(shape)
    if dense:
        layer = lq.layers.QuantDense(filters, input_quantizer=quantizer, name="k", **kwargs)
    else:
        kwargs.setdefault("padding", "same")
        layer = lq.layers.QuantConv2D(filters, 3, input_quantizer=quantizer, name="k", **kwargs)
    model = tf.keras.Model(inputs, layer(x))
    _set_levels(layer, weights)
    return model


def _inputs(model, n: int = 16) -> np.ndarray:
    return rng.uniform(-0.5, 1.5, (n, *model.input_shape[1:])).astype(np.float32)


def _pixels(shape, n: int = 16) -> np.ndarray:
    from pipeline.data import normalize

    return normalize(rng.integers(0, 256, (n, *shape), dtype=np.uint8))


def _same_outputs(model, rewritten, data, atol: float = 1e-5) -> None:
    want = model(data, training=False).numpy()
    np.testing.assert_allclose(rewritten(data, training=False), want, rtol=1e-5, atol=atol)


# -- the identity, in integers ----------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 3, 4, 5, 8, 16])
def test_thermometer_planes_sum_to_the_code_and_rebuild_the_level(levels):
    """``m = Σ_t (s_t + 1)/2`` with ``s_t = sign(m − t + ½)``, and on a dyadic grid
    ``a = d + Σ_t c_t s_t`` holds bit-exactly in float64."""
    m = np.arange(levels)
    s = np.stack([np.where(2 * m - 2 * t + 1 > 0, 1, -1) for t in range(1, levels)])
    np.testing.assert_array_equal((s + 1).sum(0) // 2, m)
    grid = er.UniformGrid(-1.0, 0.5, levels)
    c, d = grid.coefficients("thermometer")
    assert len(c) == grid.planes("thermometer") == levels - 1
    np.testing.assert_array_equal(d + (c[:, None] * s).sum(0), -1.0 + 0.5 * m)


@pytest.mark.parametrize(
    "quantizer", [_dorefa(2), _dorefa(3), _dorefa(4), "ste_tern"], ids=["a2", "a3", "a4", "tern"]
)
def test_thermometer_edges_cut_the_planes_from_the_input_exactly(quantizer):
    """``[m ≥ t] = [x − e_t ≥ 0]`` in float32 at the edges, one float below them, on the
    rounding ties and on random inputs: the planes need no quantizer in the graph."""
    q = lq.quantizers.get(quantizer)
    grid = er.uniform_grid(q)
    edges = er.thermometer_edges(q, grid)
    assert edges is not None and len(edges) == grid.levels - 1
    ties = ((np.arange(grid.levels) + 0.5) * grid.step + grid.offset).astype(np.float32)
    x = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), ties, [0.0, -0.0],
                        rng.uniform(-2, 2, 20000)]).astype(np.float32)  # fmt: skip
    m = np.round((np.asarray(q(tf.constant(x)), np.float64) - grid.offset) / grid.step)
    for t, e in enumerate(edges, start=1):
        np.testing.assert_array_equal((x - e) >= 0, m >= t)


def test_the_encodings_constant_terms_differ_off_powers_of_two():
    """3 levels: binary planes cover codes 0…3 (d at 1.5 steps), thermometer 0…2 (1 step)."""
    grid = er.uniform_grid(lq.quantizers.SteTern())
    assert grid == er.UniformGrid(-1.0, 1.0, 3)
    assert grid.coefficients("binary")[1] == 0.5 and grid.coefficients("thermometer")[1] == 0.0
    pixels = er.pixel_grid(er.run_pixel_scale())
    assert pixels.bits == 8 and pixels.coefficients()[1] == 0.0  # no constant, no padding fix


# -- layer-level rewrites ----------------------------------------------------------------
THERMOMETER_CASES = [
    (2, "binary", "same"),
    (2, "2bit", "valid"),
    (3, "ternary", "same"),
    (3, "ttq", "valid"),
    (4, "2bit", "same"),
    (4, "binary", "valid"),
]


@pytest.mark.parametrize(("k", "weights", "padding"), THERMOMETER_CASES)
def test_thermometer_layer_is_one_longer_product_with_the_same_outputs(k, weights, padding):
    model = _layer_model(_dorefa(k), weights, padding=padding)
    rewritten, (plan,) = er.prepare_for_lce(model, encoding="thermometer")
    j = WEIGHT_PLANES[weights]
    assert (plan.encoding, plan.activation_planes, plan.weight_planes) == (
        "thermometer",
        2**k - 1,
        j,
    )
    new = rewritten.get_layer("k")
    ones = int(weights == "ttq")
    assert new.conv.name == "bconv_thermometer" and new.conv.filters == j * 6 + ones
    assert new.conv.kernel.shape[-2] == 3 * (2**k - 1)  # planes side by side on channels
    assert new.conv.padding == "valid"  # DoReFa's zero is a level: padded explicitly
    _same_outputs(model, rewritten, _inputs(model))


@pytest.mark.parametrize("encoding", plane_cost.ENCODINGS)
@pytest.mark.parametrize("dense", [False, True])
def test_ternary_activations_pad_with_their_zero_level_in_either_encoding(encoding, dense):
    shape = (12,) if dense else (7, 7, 4)
    model = _layer_model(lq.quantizers.SteTern(), "2bit", shape=shape, dense=dense, use_bias=True)
    rewritten, (plan,) = er.prepare_for_lce(model, encoding=encoding)
    assert plan.encoding == encoding and plan.activation_planes == 2
    data = rng.uniform(-1.5, 1.5, (16, *shape)).astype(np.float32)
    _same_outputs(model, rewritten, data)


def test_thermometer_layer_round_trips_through_its_config():
    model = _layer_model(_dorefa(2), "ttq", strides=2)
    rewritten, _ = er.prepare_for_lce(model, encoding="thermometer")
    layer = rewritten.get_layer("k")
    copy = er.BitPlaneProduct.from_config(layer.get_config())
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    data = _inputs(model)
    assert copy.encoding == "thermometer"
    np.testing.assert_array_equal(copy(data), layer(data))


# -- the choice ----------------------------------------------------------------------------
def test_cost_model_prefers_thermometer_unless_15_planes_meet_many_channels():
    """Fitted to aarch64 instruction counts (benchmarks/results/kbit_encodings.md): a
    plane's output and input work outweighs its popcounts, except where 4-bit inputs make
    15 thermometer planes over hundreds of channels."""
    few = plane_cost.LayerShape(128, 9, 128, 1024, 1024, levels=4)  # VGG-8 conv2, A2
    many = plane_cost.LayerShape(512, 9, 512, 64, 64, levels=16)  # 15 planes × 512 channels
    assert plane_cost.choose(few)[0] == "thermometer"
    assert plane_cost.choose(many)[0] == "binary"
    # popcounts count the words each product reads: 96 channels are 3 words, 32 one
    wide = plane_cost.LayerShape(32, 1, 1, 1, 1, levels=4)
    assert plane_cost.cost(wide, "thermometer") == pytest.approx(
        3 * plane_cost.POPCOUNT_COST + plane_cost.OUTPUT_COST
        + 3 * 32 * plane_cost.INPUT_COST["thermometer"]
    )  # fmt: skip
    only = plane_cost.choose(few, ["binary"])
    assert only == ("binary", {"binary": plane_cost.cost(few, "binary")})


@pytest.mark.parametrize(("channels", "filters"), [(3, 6), (512, 256)])
def test_the_rewrite_takes_the_cost_models_choice_and_reports_both_costs(channels, filters):
    model = _layer_model(_dorefa(4), "binary", shape=(4, 4, channels), filters=filters)
    _, (plan,) = er.prepare_for_lce(model)
    cheaper = min(plan.costs, key=plan.costs.get)
    assert cheaper == ("thermometer" if channels == 3 else "binary")
    # one layer alone: 15 thermometer planes store its kernel 15×, over the size budget
    assert plan.encoding == "binary"
    assert plan.kernel_bits["thermometer"] == 15 * plan.kernel_bits["binary"]
    assert ("size budget" in plan.why_encoding) == (cheaper == "thermometer")
    sign = _layer_model("ste_sign", "ternary")  # 2 levels: one sign plane either way
    assert er.prepare_for_lce(sign)[1][0].encoding == "binary"


def test_fit_size_moves_the_layers_that_save_most_bits_per_instruction_lost():
    def pick(name: str, bits: int, lost: float) -> plane_cost.Pick:
        return plane_cost.Pick(name, "thermometer", {"binary": 100 + lost, "thermometer": 100},
                               {"binary": bits, "thermometer": 3 * bits})  # fmt: skip

    small, big = pick("small", 10, 5.0), pick("big", 100, 20.0)  # big: 0.1 lost per bit
    assert plane_cost.fit_size([small, big]) == {"small": "thermometer", "big": "binary"}
    assert plane_cost.fit_size([small, big], budget=3) == {"small": "thermometer",
                                                           "big": "thermometer"}  # fmt: skip
    assert set(plane_cost.fit_size([small, big], budget=1).values()) == {"binary"}


def test_a_lenet_like_model_keeps_its_small_convolution_on_thermometer_planes():
    """The dense layer holds most weights: bit planes there bring the stored kernels
    within the budget, and the cheaper thermometer planes stay on the convolution."""
    x = inputs = tf.keras.Input((8, 8, 8))
    q = dict(input_quantizer=_dorefa(2), kernel_quantizer="ste_sign", use_bias=False)
    x = lq.layers.QuantConv2D(16, 3, padding="valid", name="conv", **q)(x)
    x = tf.keras.layers.Flatten()(x)
    model = tf.keras.Model(inputs, lq.layers.QuantDense(256, name="dense", **q)(x))
    rewritten, plans = er.prepare_for_lce(model)
    by_name = {p.layer: p for p in plans}
    assert all(min(p.costs, key=p.costs.get) == "thermometer" for p in plans)
    assert (by_name["conv"].encoding, by_name["dense"].encoding) == ("thermometer", "binary")
    assert "size budget" in by_name["dense"].why_encoding
    assert by_name["conv"].why_encoding == "the cheaper"
    stored = sum(p.kernel_bits[p.encoding] for p in plans)
    assert stored <= plane_cost.SIZE_BUDGET * sum(p.kernel_bits["binary"] for p in plans)
    data = rng.uniform(-0.5, 1.5, (8, 8, 8, 8)).astype(np.float32)
    _same_outputs(model, rewritten, data, atol=1e-4)


@pytest.mark.parametrize("encoding", plane_cost.ENCODINGS)
def test_a_clip_before_a_clipping_quantizer_is_dropped_with_the_same_outputs(encoding):
    """DoReFa clips to [0, 1] itself: the method's ReLU(max_value=1) before it goes (in
    either encoding); one that also feeds a float layer stays."""
    x = inputs = tf.keras.Input((6, 6, 4))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    x = tf.keras.layers.ReLU(max_value=1.0, name="clip")(x)
    q = lq.layers.QuantConv2D(8, 3, padding="same", input_quantizer=_dorefa(2), name="k")
    model = tf.keras.Model(inputs, q(x))
    _set_levels(q, "binary")
    both = tf.keras.Model(inputs, [q.output, tf.keras.layers.Dense(3)(x)])
    assert er.redundant_clip(model.get_layer("clip"), model)
    assert not er.redundant_clip(both.get_layer("clip"), both)
    rewritten, _ = er.prepare_for_lce(model, encoding=encoding)
    assert not any(isinstance(ly, tf.keras.layers.ReLU) for ly in rewritten.layers)
    data = rng.uniform(-2, 3, (8, 6, 6, 4)).astype(np.float32)
    _same_outputs(model, rewritten, data, atol=1e-4)
    kept, _ = er.prepare_for_lce(both, encoding=encoding)
    assert any(isinstance(ly, tf.keras.layers.ReLU) for ly in kept.layers)


# -- the image's bit planes under a first convolution --------------------------------------
def _image_conv(weights: str, padding: str, shape=(10, 10, 3), quantizer=None, **kwargs):
    x = inputs = tf.keras.Input(shape)
    first = lq.layers.QuantConv2D(
        8, 3, padding=padding, kernel_quantizer=quantizer, name="first", **kwargs
    )
    y = tf.keras.layers.BatchNormalization()(first(x))
    model = tf.keras.Model(inputs, y)
    _set_levels(first, weights)
    bn = model.layers[-1]
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 1, 8), rng.normal(0, 1, 8),
                    rng.uniform(0.5, 2, 8)])  # fmt: skip
    return model


@pytest.mark.parametrize(
    ("weights", "padding", "quantizer"),
    [("binary", "same", "magnitude_aware_sign"), ("ternary", "valid", "ste_tern"),
     ("2bit", "same", "noop"), ("ttq", "valid", "noop")],
)  # fmt: skip
def test_first_convolution_runs_on_the_pixels_bit_planes(weights, padding, quantizer):
    """8 pixel planes × the weights' planes; SAME pads the planes with LCE's zeros, exact
    because the centered grid has no constant term. (``noop``: the kernel already holds
    the levels, which is what is baked.)"""
    if quantizer == "noop":
        quantizer = lq.quantizers.NoOp(precision=2)
    model = _image_conv(weights, padding, quantizer=quantizer, use_bias=True)
    (default,) = er.prepare_for_lce(model, er.run_pixel_scale())[1]  # slower: int8 unless asked
    assert (default.action, default.reason) == ("baked", er.IMAGE_PLANES_OFF)
    rewritten, (plan,) = er.prepare_for_lce(model, er.run_pixel_scale(), image_planes=True)
    j, ones = WEIGHT_PLANES[weights], int(weights == "ttq")
    assert (plan.action, plan.encoding, plan.activation_planes) == ("planes->bconv", "binary", 8)
    assert plan.products == 8 * (j + ones) and plan.ones_filter == bool(ones)
    assert rewritten.get_layer("first").conv.padding == padding
    _same_outputs(model, rewritten, _pixels((10, 10, 3)), atol=1e-4)


def test_first_layers_that_stay_say_why():
    binary = _image_conv("binary", "same", quantizer="ste_sign")
    (plan,) = er.prepare_for_lce(binary)[1]  # the input's grid is not known
    assert plan.action == "baked" and plan.reason == er.UNKNOWN_GRID
    floating = _image_conv("binary", "same")  # no weight quantizer: DoReFa's first layer
    floating.get_layer("first").kernel.assign(rng.normal(size=(3, 3, 3, 8)).astype(np.float32))
    (plan,) = er.prepare_for_lce(floating, er.run_pixel_scale(), image_planes=True)[1]
    assert plan.action == "baked" and plan.reason.startswith("float weights (weights have")


def test_image_and_thermometer_products_run_on_lces_interpreter_as_in_keras():
    """A first convolution on pixel planes, then a 2-bit layer on thermometer planes, as
    LCE converts them: two LceBconv2d, no int8 or float multiply-accumulates, outputs as in
    Keras; tools.inspect names each product's encoding."""
    import larq_compute_engine as lce

    from pipeline.export.exporter import lce_predict
    from pipeline.tflite.reader import read_model
    from tools.inspect import inspect

    x = inputs = tf.keras.Input((10, 10, 3))
    x = lq.layers.QuantConv2D(16, 3, padding="same", kernel_quantizer="ste_sign", name="first")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU(max_value=1.0)(x)
    k = lq.layers.QuantConv2D(8, 3, padding="same", input_quantizer=_dorefa(2), name="k")
    model = tf.keras.Model(inputs, tf.keras.layers.Flatten()(k(x)))
    _set_levels(model.get_layer("first"), "binary")
    _set_levels(k, "ternary")
    model.layers[2].set_weights([rng.uniform(0.5, 1.5, 16), rng.uniform(0, 1, 16),
                                 np.zeros(16), np.ones(16)])  # fmt: skip
    rewritten, plans = er.prepare_for_lce(
        model, er.run_pixel_scale(), encoding="thermometer", image_planes=True
    )
    assert [(p.encoding, p.activation_planes) for p in plans] == [("binary", 8), ("thermometer", 3)]
    flatbuffer = lce.convert_keras_model(rewritten)
    fb = read_model(flatbuffer)
    macs = fb.macs()
    assert fb.op_counts()["LceBconv2d"] == 2 and macs.get("int8", 0) == macs.get("float", 0) == 0
    data = _pixels((10, 10, 3), 32)
    want = model(data, training=False).numpy()
    np.testing.assert_allclose(lce_predict(flatbuffer, data), want, rtol=1e-5, atol=1e-4)
    products = inspect(flatbuffer)["binary_products"]
    assert sorted((p["encoding"], p["planes"]) for p in products) == [
        ("binary", 8),
        ("thermometer", 1),
    ]

"""DoReFa, log and QNN as training methods: policy, registry options, training, export."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.errors import UsageError
from pipeline.methods import make_method
from pipeline.quantizers.dorefa import DoReFaGradient, DoReFaWeights
from pipeline.quantizers.linear import LinearQuant
from pipeline.quantizers.log import LogQuant


def quant_layers(model):
    return [layer for layer in model.layers if isinstance(layer, lq.layers.QuantizerBase)]


def test_dorefa_cli_options_and_config():
    method = make_method("dorefa", wbits=2, abits=3, gbits=4, quantize_first=True)
    config = method.config()
    assert config["bits"] == {"w": 2, "a": 3, "g": 4}
    assert config["quantize_first"] is True and config["quantize_last"] is False
    assert (config["optimizer_name"], config["lr_schedule"]) == ("adam", "cosine")
    assert make_method("dorefa").bits() == {"w": 1, "a": 2, "g": 6}  # the abstract's W1A2G6
    with pytest.raises(UsageError, match="gbits"):
        make_method("dorefa", gbits=0)


def test_dorefa_paper_layer_policy(build_tiny):
    """First and last layers keep float weights and float gradients; the last layer's
    input is still quantized; a gradient quantizer follows each quantized layer."""
    model = build_tiny(make_method("dorefa", wbits=2, abits=2, gbits=4))
    first, *hidden, last = quant_layers(model)
    assert first.kernel_quantizer is None and first.input_quantizer is None
    assert len(hidden) == 2
    assert all(isinstance(layer.kernel_quantizer, DoReFaWeights) for layer in hidden)
    assert last.kernel_quantizer is None
    assert isinstance(last.input_quantizer, lq.quantizers.DoReFa)
    grads = [layer for layer in model.layers if isinstance(layer, DoReFaGradient)]
    assert len(grads) == 2 and {g.k_bit for g in grads} == {4}
    # fg sits directly on each quantized layer's output, before batch norm.
    assert [g._inbound_nodes[0].inbound_layers for g in grads] == hidden

    everything = build_tiny(make_method("dorefa", quantize_first=True, quantize_last=True))
    assert sum(isinstance(layer, DoReFaGradient) for layer in everything.layers) == 4
    no_g = build_tiny(make_method("dorefa", gbits=32))
    assert not any(isinstance(layer, DoReFaGradient) for layer in no_g.layers)


def test_dorefa_dense_factory_quantizes_the_gradient_of_its_output():
    """dL/d(dense output) takes one of 2^k levels per sample (k = 2: ±m, ±m/3 with m the
    sample's max |upstream gradient|); the float upstream gradient has many values."""
    from pipeline.methods import Position

    block = make_method("dorefa", gbits=2).dense(6, Position.HIDDEN)
    x = tf.random.stateless_uniform((3, 5), (1, 2), -1, 1)
    upstream = tf.random.stateless_normal((3, 6), (3, 4))
    with tf.GradientTape() as tape:
        h = block.layer(x)
        tape.watch(h)
        loss = tf.reduce_sum(block.after(h) * upstream)
    g = tape.gradient(loss, h).numpy()
    for b in range(3):
        m = np.abs(upstream[b]).max()
        levels = np.array([-1, -1 / 3, 1 / 3, 1]) * m
        assert np.abs(g[b][:, None] - levels).min(-1).max() < 1e-5


def test_log_policy_and_defaults(build_tiny):
    method = make_method("log", base=2)  # --option base=2 arrives as an int
    assert method.base == "2" and (method.wfsr, method.afsr) == (-1, 2)
    assert method.config()["wfsr"] == -1  # resolved defaults are recorded
    model = build_tiny(method)
    first, *rest = quant_layers(model)
    assert first.input_quantizer is None  # the image
    for layer in (first, *rest):
        assert isinstance(layer.kernel_quantizer, LogQuant) and layer.kernel_quantizer.signed
    for layer in rest:
        assert isinstance(layer.input_quantizer, LogQuant)
        assert not layer.input_quantizer.signed
    sqrt2 = make_method("log", base="sqrt2", wbits=5, afsr=1)
    assert (sqrt2.wfsr, sqrt2.afsr, sqrt2.bits()["w"]) == (-4, 1, 5)
    with pytest.raises(UsageError, match="base"):
        make_method("log", base="3")


def test_qnn_policy(build_tiny):
    model = build_tiny(make_method("qnn", wbits=3, abits=2))
    first, hidden, *_ = layers = quant_layers(model)
    assert first.input_quantizer is None
    assert all(isinstance(layer.kernel_quantizer, LinearQuant) for layer in layers)
    assert first.kernel_quantizer.bits == 3 and hidden.input_quantizer.bits == 2
    assert isinstance(first.kernel_constraint, lq.constraints.WeightClip)
    one_bit = quant_layers(build_tiny(make_method("qnn", wbits=1, abits=1)))[1]
    assert isinstance(one_bit.kernel_quantizer, lq.quantizers.SteSign)


def test_qnn_starts_with_nonzero_kernels_and_gradients(build_tiny, tiny_data):
    """With Glorot's initialisation every 2-bit kernel rounded to 0 and no gradient
    reached any weight (the network stayed at chance on Fashion-MNIST): the latent
    weights start U(-1, 1), the clip range, so every level is used."""
    tf.keras.utils.set_random_seed(0)
    model = build_tiny(make_method("qnn"))
    layers = quant_layers(model)
    for layer in layers:
        q = layer.kernel_quantizer(tf.identity(layer.kernel)).numpy()
        assert set(np.unique(q)) == {-1.0, -0.5, 0.0, 0.5}, layer.name
    x, y = tiny_data
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(y[:64], model(x[:64], training=True))
    grads = tape.gradient(loss, [layer.kernel for layer in layers])
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


METHODS = [  # one export per method keeps the CI time down (a conversion costs ~10 s)
    ("dorefa", {"wbits": 2, "abits": 3, "gbits": 4, "quantize_first": True}),
    ("log", {"base": "sqrt2"}),
    ("qnn", {}),
]


@pytest.mark.parametrize(("name", "options"), METHODS)
def test_trains_without_nan_and_exports(name, options, train_tiny, tiny_data, export_matches):
    model, history = train_tiny(make_method(name, **options), steps=8, epochs=2)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # it learns
    export_matches(model, tiny_data[0][:32])


@pytest.mark.parametrize(
    ("name", "options", "planes"),
    [
        ("dorefa", {}, (2, 1)),  # W1A2, the default: E|W| sign(W) on 2 activation planes
        ("dorefa", {"abits": 4}, (4, 1)),
        ("dorefa", {"wbits": 2}, (2, 2)),  # {−1, −⅓, ⅓, 1} = (2 S_1 + S_2)/3
        ("qnn", {}, (2, 2)),  # W2A2: LinearQuant levels {−1, −½, 0, ½} on both
    ],
)
def test_kbit_methods_reach_binary_products(name, options, planes, build_tiny, tiny_data,
                                            binary_products):  # fmt: skip
    """Issue 16: every hidden layer (and QNN's quantized last layer) of DoReFa and QNN
    nets exports as sums of binary products, computing what Keras computes."""
    model = build_tiny(make_method(name, **options))
    reached = binary_products(model, tiny_data[0][:32])
    hidden = {"conv2": planes, "dense1": planes}
    # DoReFa's last layer keeps float weights (paper policy); QNN quantizes it
    assert reached == (hidden if name == "dorefa" else {**hidden, "dense2": planes})

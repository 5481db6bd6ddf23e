"""Bitpacked activations between binary layers (pipeline.tflite.chains): the rewritten
file computes exactly what LCE's conversion computes, on LCE's interpreter and on
bitlite's runtime with every kernel, and a chain that cannot be written with LCE's ops
(OR pooling) stays as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.tflite import chains
from pipeline.tflite.reader import read_model

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "runtime") not in sys.path:  # this checkout's runtime, not an installed one
    sys.path.insert(0, str(ROOT / "runtime"))

SIZE, CIN = 8, 40


def _conv(filters: int, padding: str, pad_values: float):
    import larq as lq

    return lq.layers.QuantConv2D(filters, 3, padding=padding, pad_values=pad_values,
                                 input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                 kernel_constraint="weight_clip", use_bias=False)  # fmt: skip


def _branch(x, tag: str):
    """conv -> BN -> max-pool -> BN (the pooled chain); conv -> ReLU -> BN (LCE writes
    that one bitpacked itself); a float head."""
    import tensorflow as tf

    bn = tf.keras.layers.BatchNormalization
    y = bn(name=f"{tag}_bn1")(_conv(64, "same", 1.0)(x))
    y = bn(name=f"{tag}_bn2")(tf.keras.layers.MaxPool2D(2)(y))
    y = bn(name=f"{tag}_bn3")(tf.keras.layers.ReLU()(_conv(48, "same", 1.0)(y)))
    return bn(name=f"{tag}_bn4")(_conv(10, "valid", 0.0)(y))


def _flat(x):
    """A pooled chain flattened into a dense layer (a 1x1 convolution): a RESHAPE
    before the LceQuantize."""
    import tensorflow as tf

    bn = tf.keras.layers.BatchNormalization
    y = bn(name="flat_bn1")(_conv(64, "same", 1.0)(x))
    y = bn(name="flat_bn2")(tf.keras.layers.MaxPool2D(2)(y))
    y = tf.keras.layers.Reshape((1, 1, (SIZE // 2) ** 2 * 64))(y)
    return bn(name="flat_bn3")(_dense_conv(10)(y))


def _dense_conv(units: int):
    import larq as lq

    return lq.layers.QuantConv2D(units, 1, input_quantizer="ste_sign",
                                 kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                                 use_bias=False)  # fmt: skip


def _model():
    """Branch "and": a positive scale after the pool (AND pooling; the scale before it
    has both signs, so some filters are negated). Branch "or": one negative scale after
    the pool, which would need OR pooling. Branch "flat": pooled, then flattened."""
    import tensorflow as tf

    inputs = [tf.keras.Input((SIZE, SIZE, CIN)) for _ in range(3)]
    model = tf.keras.Model(inputs, [_branch(inputs[0], "and"), _branch(inputs[1], "or"),
                                    _flat(inputs[2])])  # fmt: skip
    rng = np.random.default_rng(5)
    for layer in model.layers:
        weights = layer.get_weights()
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights([rng.normal(0, 1, w.shape).astype("float32") for w in weights])
            continue
        n = weights[0].shape
        sign = rng.choice([-1.0, 1.0], n)
        if layer.name.endswith("bn2"):  # after the pool
            sign = np.ones(n)
            sign[3] = -1.0 if layer.name.startswith("or") else 1.0
        layer.set_weights([(sign * rng.uniform(0.3, 2.0, n)).astype("float32"),
                           rng.normal(0, 1, n).astype("float32"),
                           rng.normal(0, 4, n).astype("float32"),
                           rng.uniform(0.5, 3.0, n).astype("float32")])  # fmt: skip
    return model


@pytest.fixture(scope="module")
def converted() -> tuple[bytes, bytes, list[chains.ChainReport]]:
    import larq_compute_engine as lce

    original = lce.convert_keras_model(_model())
    rewritten, reports = chains.bitpack_chains(original)
    return original, rewritten, reports


def _inputs(n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(0, 1, (n, SIZE, SIZE, CIN)).astype(np.float32) for _ in range(3)]


def _run_bitlite(model: bytes, kernel: str, xs: list[np.ndarray]) -> list[np.ndarray]:
    from bitlite_runtime import Interpreter

    it = Interpreter(model, kernel=kernel)
    runs = [it.invoke([x[i : i + 1] for x in xs]) for i in range(len(xs[0]))]
    return [np.concatenate(outs) for outs in zip(*runs, strict=True)]


def test_pooled_and_unfolded_chains_become_bitpacked(converted):
    original, rewritten, reports = converted
    before, after = read_model(original).op_counts(), read_model(rewritten).op_counts()
    done = [r for r in reports if r.rewritten]
    assert len(reports) == 3 and len(done) == 2, [r.to_dict() for r in reports]
    assert any(r.ops == ["MAX_POOL_2D", "MUL", "ADD"] and r.flipped > 0 for r in done)
    assert any(r.ops == ["MAX_POOL_2D", "MUL", "ADD", "RESHAPE"] for r in done)
    (kept,) = [r for r in reports if not r.rewritten]
    assert "MAX_POOL_2D" in kept.ops and "OR" in kept.reason
    assert before["MAX_POOL_2D"] == 3 and after["MAX_POOL_2D"] == 1
    assert after.get("LceBMaxPool2d", 0) == before.get("LceBMaxPool2d", 0) + 2
    assert after["LceQuantize"] == before["LceQuantize"] - 2
    assert "MUL" not in after or after["MUL"] == 1
    assert len(rewritten) < len(original)  # multipliers and biases out, thresholds in


def test_rewrite_is_exact_on_lce(converted):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    original, rewritten, _ = converted
    xs = _inputs()
    want = Interpreter(original).predict(xs)
    got = Interpreter(rewritten).predict(xs)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_rewrite_is_exact_on_every_bitlite_kernel(converted):
    import bitlite_runtime

    original, rewritten, _ = converted
    xs = _inputs()
    want = _run_bitlite(original, "reference", xs)
    for kernel in bitlite_runtime.available_kernels():
        got = _run_bitlite(rewritten, kernel, xs)
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=kernel)


def test_thresholds_match_every_count_and_refuse_or_pooling():
    rng = np.random.default_rng(1)
    depth = 50
    cuts = rng.integers(-1, depth + 1, 16)
    a = np.arange(depth + 1)
    rising = a[None, :] > cuts[:, None]
    bits = np.where(rng.random(16)[:, None] < 0.5, rising, rising[:, ::-1])
    thresholds, flip = chains._thresholds(bits, None)
    count = np.where(flip[:, None], depth - a[None, :], a[None, :])
    np.testing.assert_array_equal(count > thresholds[:, None], bits)
    falling_value = -a[None, :].repeat(16, 0).astype(np.float32)
    with pytest.raises(chains._Skip, match="OR"):  # a falling bit of a falling value
        chains._thresholds(rising[:, ::-1], falling_value)
    with pytest.raises(chains._Skip, match="monotone"):
        chains._thresholds(np.array([[False, True, False]]), None)

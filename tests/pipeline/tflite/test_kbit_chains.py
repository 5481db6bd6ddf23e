"""k-bit layers on bitlite's fused op (pipeline.tflite.kbit_chains, runtime/src/kbit.cc):
the rewritten thermometer export computes exactly what the portable one computes, on
every bitlite kernel and thread count; sites that do not fit stay and say why."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.tflite import kbit_chains
from pipeline.tflite.reader import read_model

tf = pytest.importorskip("tensorflow")
lq = pytest.importorskip("larq")

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "runtime") not in sys.path:  # this checkout's runtime, not an installed one
    sys.path.insert(0, str(ROOT / "runtime"))

SHAPE = (9, 11, 40)  # odd sizes; 40 channels: a partial last word


def _conv(filters: int, k: int, padding: str, bits: int, **kwargs):
    return lq.layers.QuantConv2D(
        filters, k, padding=padding, use_bias=False, kernel_quantizer="ste_sign",
        input_quantizer=lq.quantizers.DoReFa(k_bit=bits, mode="activations"), **kwargs)  # fmt: skip


def _model(bits: int, mixed_signs: bool):
    """k-bit layers: SAME (from float), SAME fed by a pooled layer (batch norm, max-pool,
    batch norm: with ``mixed_signs``, scales of both signs before and after the pool),
    VALID strided, and a float head."""
    bn = tf.keras.layers.BatchNormalization
    x = inputs = tf.keras.Input(SHAPE)
    x = bn(name="bn0")(tf.keras.layers.Conv2D(40, 1)(x))
    x = bn(name="bn1")(_conv(36, 3, "same", bits)(x))
    x = bn(name="bn2")(tf.keras.layers.MaxPool2D(2, padding="same")(x))
    x = bn(name="bn3")(_conv(33, 3, "same", bits)(x))
    x = bn(name="bn4")(_conv(20, 3, "valid", bits, strides=2)(x))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 1)(x))
    rng = np.random.default_rng(bits)
    for layer in model.layers:
        w = layer.get_weights()
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            sign = rng.choice([-1.0, 1.0], w[0].shape) if (
                mixed_signs and layer.name in ("bn1", "bn2")) else 1.0  # fmt: skip
            layer.set_weights([sign * rng.uniform(0.5, 2.0, w[0].shape),
                               rng.normal(0.4, 0.3, w[1].shape), rng.normal(0, 0.2, w[2].shape),
                               rng.uniform(0.2, 1.0, w[3].shape)])  # fmt: skip
        elif w:
            layer.set_weights([rng.normal(0, 0.3, v.shape).astype("float32") for v in w])
    return model


def _export(bits: int, mixed_signs: bool = False) -> bytes:
    from pipeline.export.convert import convert
    from pipeline.export.keras_rewrite import prepare_for_lce

    model, _ = prepare_for_lce(_model(bits, mixed_signs), encoding="thermometer")
    return convert(model).flatbuffer


@pytest.fixture(scope="module", params=[(2, False), (3, True)], ids=["A2", "A3-mixed-bn-signs"])
def exported(request):
    portable = _export(*request.param)
    fused, reports = kbit_chains.fuse_kbit(portable)
    return portable, fused, reports, request.param[1]


def _run(model: bytes, kernel: str, threads: int, x: np.ndarray) -> np.ndarray:
    from bitlite_runtime import Interpreter

    it = Interpreter(model, kernel=kernel, num_threads=threads)
    return np.concatenate([np.asarray(it.predict(x[i : i + 1])) for i in range(len(x))])


def test_every_thermometer_site_becomes_the_fused_op(exported):
    portable, fused, reports, mixed = exported
    assert [(r.rewritten, r.output) for r in reports] == [(True, "planes"), (True, "planes"),
                                                        (True, "float")], reports  # fmt: skip
    assert reports[0].source == "quantize" and reports[1].source == reports[0].conv
    # the first writes the second's planes through the max-pool; the second the third's
    bits = 3 if mixed else 2
    assert [(r.planes, r.out_planes, r.pool) for r in reports] == [
        (bits, bits, True), (bits, bits, False), (bits, 0, False)]  # fmt: skip
    assert all("bconv_thermometer" in r.quantized for r in reports)  # names the Keras layer
    after = read_model(fused)
    counts = after.op_counts()
    assert (counts["BitliteKbitQuantize"], counts["BitliteKbitBconv2d"]) == (1, 3)
    assert "LceQuantize" not in after.op_counts() and "MAX_POOL_2D" not in after.op_counts()
    assert after.bitlite_ops() == ["BitliteKbitBconv2d", "BitliteKbitQuantize"]
    assert "LceBconv2d" in read_model(portable).op_counts()
    assert len(fused) < len(portable)  # one binary filter instead of 2^k - 1 copies
    # every binary product counted: k planes where the thermometer had 2^k - 1
    bits = 3 if mixed else 2
    macs = read_model(portable).macs()["binary"]
    assert after.macs()["binary"] * (2**bits - 1) == macs * bits > 0
    # each binary filter once: filters × 3×3 × the layer's input channels (40, 36, 33)
    assert [(w.count, w.bytes) for w in after.weights() if w.op == "BitliteKbitBconv2d"] == [
        (36 * 9 * 40, 36 * 9 * 8), (33 * 9 * 36, 33 * 9 * 8), (20 * 9 * 33, 20 * 9 * 8)]
    flags = [np.frombuffer(t.data, np.int32) for t in after.tensors
             if t.name.endswith("/level_flags")]  # fmt: skip
    # the first layer's output is max-pooled: a value falling with the count pools by the
    # least count (POOL_MIN); a negative scale after the pool makes the level fall (FALLS)
    for flag in (kbit_chains.POOL_MIN, kbit_chains.FALLS):
        got = flags[0] & flag
        assert (got.any() and not got.all()) == mixed, (flag, got)


def test_fused_op_is_exact_on_every_kernel_and_thread_count(exported):
    import bitlite_runtime

    portable, fused, _, _ = exported
    x = np.random.default_rng(2).normal(0.3, 1.0, (12, *SHAPE)).astype(np.float32)
    want = _run(portable, "reference", 1, x)
    assert np.unique(want.round(3)).size > 20  # the outputs vary: not a constant graph
    for kernel in [*bitlite_runtime.available_kernels(), "reference"]:
        for threads in (1, 2, 4):
            np.testing.assert_array_equal(_run(fused, kernel, threads, x), want,
                                          err_msg=f"{kernel}, {threads} threads")  # fmt: skip


def test_zero_padding_is_level_zero_not_a_plus_one_plane():
    """All-zero input: every k-bit activation of the first layer is its BN's constant
    level, and border pixels differ from inner ones only through the zero padding."""
    portable = _export(2)
    fused, _ = kbit_chains.fuse_kbit(portable)
    x = np.zeros((1, *SHAPE), np.float32)
    want = _run(portable, "reference", 1, x)
    np.testing.assert_array_equal(_run(fused, "reference", 1, x), want)
    assert not np.allclose(want[0, 0, 0], want[0, 1, 1])  # the border shows the padding


def test_level_thresholds_match_every_count_in_both_directions():
    rng = np.random.default_rng(3)
    depth, channels, levels = 60, 24, 3
    p = np.arange(depth + 1)
    cuts = np.sort(rng.integers(-1, depth + 1, (channels, levels)), axis=1)
    rising = (p[None, None, :] > cuts[:, :, None]).sum(1)  # [O, depth + 1]
    falls = rng.random(channels) < 0.5
    level = np.where(falls[:, None], rising[:, ::-1], rising)
    thresholds, flags = kbit_chains.step_thresholds(level, levels)
    assert ((flags == kbit_chains.FALLS) == (falls & (level[:, 0] != level[:, -1]))).all()
    t = thresholds[:, :, None]
    got = np.where((flags == kbit_chains.FALLS)[:, None], (p < t).sum(1), (p > t).sum(1))
    np.testing.assert_array_equal(got, level)
    with pytest.raises(kbit_chains._Skip, match="monotone"):
        kbit_chains.step_thresholds(np.array([[0, 2, 1]]), levels)


def test_bit_plane_sites_stay_and_say_why():
    """The bit-plane encoding (planes on the batch axis) is not a thermometer site: the
    file is unchanged and the report names the layer and the reason."""
    from pipeline.export.convert import convert
    from pipeline.export.keras_rewrite import prepare_for_lce

    model, _ = prepare_for_lce(_model(2, False), encoding="binary")
    portable = convert(model).flatbuffer
    fused, reports = kbit_chains.fuse_kbit(portable)
    assert fused == portable and reports and not any(r.rewritten for r in reports)
    assert all(r.reason for r in reports)


def test_filter_planes_must_be_equal():
    words = np.random.default_rng(4).integers(0, 2**32, (5, 3, 3, 4), dtype=np.uint64)
    base = kbit_chains._words(kbit_chains._bits(words.astype(np.uint32))[..., :40])
    stacked = kbit_chains._words(np.concatenate([kbit_chains._bits(base)[..., :40]] * 3, -1))
    np.testing.assert_array_equal(kbit_chains._base_filters(stacked, 3, 40), base)
    broken = stacked.copy()
    broken[0, 0, 0, 2] ^= 1  # a bit of the second plane
    with pytest.raises(kbit_chains._Skip, match="differs"):
        kbit_chains._base_filters(broken, 3, 40)

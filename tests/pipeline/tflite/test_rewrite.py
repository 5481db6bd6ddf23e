"""int8 storage of low-bit weights: which level sets fit exactly, and a real round trip;
k-bit packing (BitliteDecodeWeights) of the same weights, exact against the int8 file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.tflite import rewrite as tr
from pipeline.tflite.reader import ModelFormatError, read_model

rng = np.random.default_rng(0)


def _dorefa_grid(k: int, n: int = 4000) -> np.ndarray:
    """DoReFa's k-bit weight levels (2i - (2^k - 1)) / (2^k - 1), every level present."""
    levels = (2 * np.arange(2**k) - (2**k - 1)) / (2**k - 1)
    return rng.permutation(np.resize(levels, n)).astype(np.float32)


def _po2(octaves: int, n: int = 4000) -> np.ndarray:
    exps = np.resize(np.arange(-octaves + 1, 1), n)
    return (rng.choice([-1.0, 1.0], n) * 2.0**exps * 0.3).astype(np.float32)


@pytest.mark.parametrize("k", range(1, 8))
def test_dorefa_grids_up_to_7_bits_fit_exactly(k):
    w = _dorefa_grid(k) * np.float32(0.37)
    s, q = tr.fit_grid(w)
    assert np.abs(q).max() == 2**k - 1
    np.testing.assert_allclose(q * np.float32(s), w, rtol=0, atol=2e-6 * np.abs(w).max())


def test_dorefa_8_bits_and_9_octaves_of_powers_of_two_do_not_fit():
    assert tr.fit_grid(_dorefa_grid(8)) is None  # needs |q| = 255
    assert tr.fit_grid(_po2(8)) is None  # 2^7 = 128 > 127
    assert 0 < tr.plain_int8_error(_dorefa_grid(8)) <= 0.5 / 127 + 1e-6


def test_ternary_binary_and_powers_of_two_fit():
    alpha = np.float32(0.0123)
    tern = rng.choice([-1, 0, 1], 500).astype(np.float32) * alpha
    s, q = tr.fit_grid(tern)
    assert s == alpha and set(np.unique(q)) == {-1, 0, 1}
    s, q = tr.fit_grid(_po2(7))
    assert np.abs(q).max() == 64
    assert tr.fit_grid(rng.normal(size=500).astype(np.float32)) is None  # float weights


def test_grid_with_unused_first_level_still_fits():
    w = np.array([2, -3, 5, 0, 7], np.float32) * np.float32(0.01)  # level 1 never used
    s, q = tr.fit_grid(w)
    np.testing.assert_array_equal(q, [2, -3, 5, 0, 7])


@pytest.fixture(scope="module")
def ternary_tflite():
    """A float TFLite model (stock converter, in-process) whose dense weights are ternary."""
    import tensorflow as tf

    import pipeline  # noqa: F401

    x = inputs = tf.keras.Input((16,))
    dense = tf.keras.layers.Dense(8)
    x = tf.keras.layers.Dense(4, activation="softmax")(dense(x))
    model = tf.keras.Model(inputs, x)
    w, b = dense.get_weights()
    dense.set_weights([rng.choice([-1, 0, 1], w.shape).astype(np.float32) * 0.05, b])
    data = rng.normal(size=(64, 16)).astype(np.float32)
    return tf.lite.TFLiteConverter.from_keras_model(model).convert(), model.predict(data), data


def test_int8_weights_run_in_stock_tflite_with_identical_outputs(ternary_tflite):
    from pipeline.export.exporter import tflite_predict

    raw, expected, data = ternary_tflite
    packed, reports = tr.int8_weights(raw)
    exact = [r for r in reports if r.exact]
    assert len(exact) == 1 and exact[0].levels == 3 and exact[0].stored == "int8"
    assert [r.stored for r in reports if not r.exact] == ["float32"]  # the float layer
    model = read_model(packed)
    assert model.op_counts()["DEQUANTIZE"] == 1
    assert sorted(w.dtype for w in model.weights()) == ["float32", "int8"]
    np.testing.assert_allclose(tflite_predict(packed, data), expected, rtol=0, atol=1e-6)


def test_packed_buffers_are_16_byte_aligned(ternary_tflite):
    packed, _ = tr.int8_weights(ternary_tflite[0])
    model = tr.schema().Model.GetRootAs(packed, 0)
    starts = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            vec = buf._tab.Offset(4)  # Buffer.data: where its vector starts in the file
            starts.append(buf._tab.Vector(vec))
    assert len(starts) >= 3 and all(s % 16 == 0 for s in starts)


def test_metadata_embeds_and_replaces(ternary_tflite):
    once = tr.embed_metadata(ternary_tflite[0], {"labels": ["a"]})
    twice = tr.embed_metadata(once, {"labels": ["b"]})
    meta = read_model(twice).metadata
    assert json.loads(meta[tr.METADATA_NAME]) == {"labels": ["b"]}


def test_rewriting_garbage_is_a_format_error():
    with pytest.raises(ModelFormatError):
        tr.int8_weights(b"not a model at all")


# -- k-bit packing -------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("count", [1, 7, 13, 1001])
def test_codes_round_trip(bits, count):
    codes = rng.integers(0, 2**bits, count)
    codes[-1] = 2**bits - 1  # the top code in the last (partial) byte
    data = tr.pack_codes(codes, bits)
    assert len(data) == (count * bits + 7) // 8
    np.testing.assert_array_equal(tr.unpack_codes(data, bits, count), codes)


def test_codes_are_lsb_first_across_bytes():
    assert tr.pack_codes(np.array([1, 2, 3, 0]), 2) == bytes([0b00111001])
    # 3-bit codes 5, 6, 7: bits 101 011 111 -> byte 0 = 0b11_110_101, byte 1 = 0b1
    assert tr.pack_codes(np.array([5, 6, 7]), 3) == bytes([0b11110101, 0b1])
    with pytest.raises(ValueError):
        tr.pack_codes(np.array([4]), 2)
    with pytest.raises(ValueError):
        tr.unpack_codes(b"\x00", 3, 3)  # 9 bits need 2 bytes


def test_code_levels_choose_the_fewest_bits():
    assert tr.code_levels(np.array([-1.0, 0.0, 1.0, 1.0]))[0] == 2
    assert tr.code_levels(np.array([0.5, 0.5]))[0] == 1
    bits, levels, codes = tr.code_levels(np.arange(16.0) - 7)
    assert bits == 4 and np.array_equal(levels[codes], np.arange(16.0) - 7)
    assert tr.code_levels(np.arange(17.0)) is None  # int8 is as good past 16 levels


def test_packed_weights_decode_to_the_int8_files_weights(ternary_tflite, checkout_runtime):
    """Same float weights bit for bit, hence the same outputs as the int8 file, on
    bitlite_runtime (both on TFLite's builtin kernels: XNNPACK takes only the int8
    file's constant weights and would sum in another order)."""
    raw, expected, data = ternary_tflite
    int8_file, _ = tr.int8_weights(raw)
    packed_file, reports = tr.int8_weights(raw, packed=True)
    assert [r.stored for r in reports] == ["packed2", "float32"]
    model = read_model(packed_file)
    assert model.op_counts()["BitliteDecodeWeights"] == 1 and "DEQUANTIZE" not in model.ops
    assert sorted(w.dtype for w in model.weights()) == ["float32", "packed2"]
    ours = checkout_runtime.Interpreter(packed_file, xnnpack=False)
    twin = checkout_runtime.Interpreter(int8_file, xnnpack=False)
    got = ours.predict(data)
    np.testing.assert_array_equal(got, twin.predict(data))
    name = reports[0].tensor
    decoded, dequantized = ours.tensor(name + "/decoded"), twin.tensor(name + "/dequantized")
    assert decoded.tobytes() == dequantized.tobytes()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_shared_values_off_the_int8_grid_pack_exactly(checkout_runtime):
    """Soft weight-sharing: 16 arbitrary shared means fit no int8 grid (the int8 path
    keeps float32) but pack as 4-bit codes with scale 1, reproducing every value."""
    import tensorflow as tf

    means = np.sort(rng.normal(size=16)).astype(np.float32)
    x = inputs = tf.keras.Input((12,))
    dense = tf.keras.layers.Dense(9, use_bias=False)
    model = tf.keras.Model(inputs, dense(x))
    dense.set_weights([means[rng.integers(0, 16, (12, 9))]])
    raw = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert [r.stored for r in tr.int8_weights(raw)[1]] == ["float32"]
    packed_file, reports = tr.int8_weights(raw, packed=True)
    assert [(r.stored, r.exact) for r in reports] == [("packed4", True)]
    data = rng.normal(size=(8, 12)).astype(np.float32)
    ours = checkout_runtime.Interpreter(packed_file, xnnpack=False)
    ours.predict(data)
    decoded = ours.tensor(reports[0].tensor + "/decoded")
    assert decoded.tobytes() == dense.get_weights()[0].T.tobytes()  # (units, features)

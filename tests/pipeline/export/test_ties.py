"""pipeline.export.ties: the file's sign decisions read back, and the rule that forgives
a rounding tie but not a sign that differs away from 0. (The whole measure on a converted
larq-zoo network, honest and with a real discrepancy: tests/benchmarks/test_zoo.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.export.ties import _FollowAtTies, plane_codes, unpack_signs


def test_unpack_signs_reads_lce_bit_order():
    # channels 0 and 33 negative: bit 0 of word 0 and bit 1 of word 1 (set bit = negative)
    packed = np.array([[[[1, 2]]]], dtype=np.int32)
    signs = unpack_signs(packed, 40)
    expected = np.ones(40, np.float32)
    expected[[0, 33]] = -1
    assert signs.shape == (1, 1, 1, 40)
    np.testing.assert_array_equal(signs[0, 0, 0], expected)
    # the top bit of a word (a negative int32) is channel 31
    np.testing.assert_array_equal(
        unpack_signs(np.array([np.iinfo(np.int32).min], np.int32), 32)[31], -1.0
    )


def test_file_sign_is_taken_only_within_the_tie_band():
    x = np.array([[1.0, 3e-6, -0.5, 2e-7, 0.0]], np.float32)  # largest |x| = 1
    file_signs = np.array([[1.0, -1.0, 1.0, 1.0, -1.0]], np.float32)
    follow = _FollowAtTies("layer", file_signs, tau=1e-5)
    out = np.asarray(follow(x))
    # 3e-6 and 0.0 are ties: the file's sign; -0.5 differs far from 0: Keras' own sign
    np.testing.assert_array_equal(out, [[1.0, -1.0, -1.0, 1.0, -1.0]])
    assert (follow.ties, follow.beyond) == (2, 1)
    assert follow.largest == np.float32(3e-6)


def test_tie_band_is_relative_to_each_sample():
    x = np.array([[1000.0, 5e-3], [1.0, 5e-3]], np.float32)  # 5e-6 of 1000, 5e-3 of 1
    file_signs = -np.ones_like(x)
    follow = _FollowAtTies("layer", file_signs, tau=1e-5)
    out = np.asarray(follow(x))
    np.testing.assert_array_equal(out, [[1.0, -1.0], [1.0, 1.0]])
    assert (follow.ties, follow.beyond) == (1, 3)


def _checks(ok: bool) -> dict:
    return {"lce": {"ok": ok, "relative_diff": 0.03}, "tflite": {"ok": False}}


def test_export_forgives_ties_only_when_no_sign_differs_beyond(monkeypatch):
    from pipeline.export import exporter, ties

    reports = iter([(2e-6, 0), (2e-6, 5), (4e-2, 0)])

    def fake(model, flatbuffer, x, name, tau=ties.TAU):
        diff, beyond = next(reports)
        return ties.TieReport(diff, 1, 1e-7, beyond, 3, 3)

    monkeypatch.setattr(ties, "tie_aware_parity", fake)
    ev = exporter.Evaluation(np.zeros((1, 2), np.float32))
    verdicts = []
    for _ in range(3):
        checks = _checks(False)
        exporter.forgive_ties(None, b"", ev, checks)
        verdicts.append(checks["lce"]["ok"])
        assert checks["lce"]["ties"]["ties"] == 1 and "ties" not in checks["tflite"]
    assert verdicts == [True, False, False]  # a tie forgiven; a real flip; logits still off
    monkeypatch.setattr(ties, "tie_aware_parity", lambda *a, **k: 1 / 0)
    checks = _checks(False)  # the measure itself failed: strict parity's verdict stands
    exporter.forgive_ties(None, b"", ev, checks)
    assert not checks["lce"]["ok"] and "ZeroDivisionError" in checks["lce"]["ties"]["error"]
    assert "not measured (ZeroDivisionError" in exporter._ties_word(checks["lce"]["ties"])
    checks = _checks(True)  # strict parity held: nothing measured again
    exporter.forgive_ties(None, b"", ev, checks)
    assert "ties" not in checks["lce"]


def test_bitlite_beyond_the_band_is_measured_again_on_builtin_float_kernels(monkeypatch):
    """bitlite's decisions beyond the band only with XNNPACK's float ops (its binary ops
    exact): parity holds and the report says so; beyond on both: it fails."""
    from pipeline.export import exporter, ties

    def run(beyond_builtin: int) -> tuple[dict, list[str]]:
        asked = []

        def fake(model, flatbuffer, x, name, tau=ties.TAU):
            asked.append(name)
            beyond = {"bitlite": 36, "bitlite-builtin": beyond_builtin, "lce": 0}[name]
            return ties.TieReport(1.9e-5 if beyond == 0 else 3e-2, 5, 1e-7, beyond, 3, 3)

        monkeypatch.setattr(ties, "tie_aware_parity", fake)
        checks = {"bitlite": {"ok": False, "relative_diff": 0.04},
                  "lce": {"ok": False, "relative_diff": 0.04}}
        exporter.forgive_ties(None, b"", exporter.Evaluation(np.zeros((1, 2), np.float32)),
                              checks)  # fmt: skip
        return checks, asked

    checks, asked = run(beyond_builtin=0)
    assert asked == ["bitlite", "bitlite-builtin", "lce"]  # lce had none beyond: once
    assert checks["bitlite"]["ok"] and checks["lce"]["ok"]
    assert checks["bitlite"]["ties"]["builtin_float"] == {
        "relative_diff": 1.9e-5, "ties": 5, "beyond": 0}
    word = exporter._ties_word(checks["bitlite"]["ties"])
    assert "36 sign(s) differing beyond" in word
    assert "builtin float kernels instead of XNNPACK 1.90e-05, 0 beyond" in word
    checks, _ = run(beyond_builtin=2)  # wrong on the builtin kernels too: a real error
    assert not checks["bitlite"]["ok"]
    assert checks["bitlite"]["ties"]["builtin_float"]["beyond"] == 2
    assert not ties.ties_hold({"relative_diff": 0.0, "beyond": 1}, 1e-3)  # none measured
    assert not ties.ties_hold({"error": "x"}, 1e-3)


def _pack(signs: np.ndarray) -> np.ndarray:
    """LCE's bitpacking of ±1 along the last axis (set bit = negative), 32 per int32."""
    bits = signs < 0
    pad = -bits.shape[-1] % 32
    bits = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), bool)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little").view("<i4")


def test_plane_codes_read_binary_and_thermometer_planes_back():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (2, 3, 5, 40))  # 2 samples, 2-bit codes, 40 channels
    padded = np.pad(codes, ((0, 0), (1, 2), (0, 1), (0, 0)))  # SAME pads: extra row last
    # binary: bit planes b_i − ½ stacked on the batch axis, sample-major
    binary = np.stack([2 * ((padded >> i) & 1) - 1 for i in range(2)], axis=1)
    packed = _pack(binary.reshape(4, 6, 6, 40))
    np.testing.assert_array_equal(plane_codes(packed, codes.shape, 4), codes)
    # thermometer: sign(m − t + ½), t = 1 … 3, side by side on the channel axis
    thermo = np.concatenate([np.where(codes >= t, 1, -1) for t in (1, 2, 3)], axis=-1)
    np.testing.assert_array_equal(plane_codes(_pack(thermo), codes.shape, 4), codes)
    # a dense layer's (N, F) input: planes of a (N, 1, 1, F) tensor
    flat = codes.reshape(2, -1)[:, :70]
    planes = np.stack([2 * ((flat >> i) & 1) - 1 for i in range(2)], axis=1)
    packed = _pack(planes.reshape(4, 1, 1, 70))
    np.testing.assert_array_equal(plane_codes(packed, flat.shape, 4), flat)


def test_k_bit_levels_follow_the_file_only_at_a_rounding_edge():
    edges = np.array([1 / 6, 1 / 2, 5 / 6], np.float32)  # round(3x)/3 on [0, 1]

    def quantize(x):
        return np.round(np.clip(np.asarray(x), 0, 1) * 3).astype(np.float32) / 3

    x = np.array([[1.0, 0.5 + 2e-6, 0.7, 0.1]], np.float32)  # largest |x| = 1
    file_values = quantize([[1.0, 1 / 3, 1.0, 0.0]])  # differs at a tie, and at 0.7
    follow = _FollowAtTies("layer", file_values, 1e-5, quantize, edges)
    out = np.asarray(follow(x))
    np.testing.assert_array_equal(out, quantize([[1.0, 1 / 3, 2 / 3, 0.0]]))
    assert (follow.ties, follow.beyond) == (1, 1)
    assert np.isclose(follow.largest, 2e-6, rtol=0.1)


def test_bitlite_builtin_runs_the_float_ops_without_xnnpack(monkeypatch):
    """'bitlite-builtin' tells XNNPACK's float rounding from the binary ops' decisions."""
    from pipeline import runtime
    from pipeline.export import ties

    made = []

    class Interpreter:
        def __init__(self, flatbuffer, num_threads=1, xnnpack=True):
            made.append(xnnpack)

        def invoke(self, x):
            return [x * 2]

    monkeypatch.setattr(runtime, "load", lambda: type("M", (), {"Interpreter": Interpreter}))
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    for name in ("bitlite", "bitlite-builtin"):
        out = ties.run_outputs(b"", x, name)
        assert len(out) == 1 and np.array_equal(out[0], 2 * x)
    assert made == [True, False]
    with pytest.raises(ValueError, match="lce or bitlite"):
        ties.run_outputs(b"", x, "tflite")

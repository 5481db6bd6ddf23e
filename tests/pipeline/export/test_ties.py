"""pipeline.export.ties: the file's sign decisions read back, and the rule that forgives
a rounding tie but not a sign that differs away from 0. (The whole measure on a converted
larq-zoo network, honest and with a real discrepancy: tests/benchmarks/test_zoo.py.)"""

from __future__ import annotations

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.export.ties import _FollowAtTies, unpack_signs


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

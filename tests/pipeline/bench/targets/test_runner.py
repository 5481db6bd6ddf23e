"""The on-device runner's pure parts (it runs on ARM with only numpy + tflite_runtime)."""

import numpy as np
import pytest

from pipeline.bench.targets.runner import RunnerError, fit_input, pattern_input, quantize


def test_pattern_input_is_fixed_and_in_range():
    x = pattern_input((1, 4, 5, 3))
    assert x.dtype == np.float32 and x.shape == (1, 4, 5, 3)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.array_equal(x, pattern_input((1, 4, 5, 3)))
    assert float(x.reshape(-1)[1]) == pytest.approx(37 / 100 - 1)
    assert len(np.unique(x)) > 50  # not a constant input


def test_fit_input_adds_a_missing_batch_dimension_only():
    assert fit_input(np.zeros((8, 8, 1)), (1, 8, 8, 1)).shape == (1, 8, 8, 1)
    with pytest.raises(RunnerError, match=r"input shape \(28, 28\) does not match"):
        fit_input(np.zeros((28, 28)), (1, 8, 8, 1))


def test_quantize_uses_the_models_scale_and_zero_point():
    x = np.array([-1.0, 0.0, 0.5, 2.0], np.float32)
    q = quantize(x, np.dtype(np.int8), 1 / 127, 0)
    assert q.dtype == np.int8 and q.tolist() == [-127, 0, 64, 127]  # 2.0 clips
    assert quantize(x, np.dtype(np.float32), 0.0, 0).dtype == np.float32


def test_parity_rules_per_kind():
    from pipeline.bench.targets.base import compare_outputs

    ref = np.array([[0.1, 0.7, 0.2]], np.float32)
    assert compare_outputs("float", ref + 5e-4, ref)["ok"] is True
    assert compare_outputs("float", ref + 5e-3, ref)["ok"] is False
    q = np.array([[-3, 100, 7]], np.int8)
    assert compare_outputs("int8", q + np.int8(1), q)["ok"] is True
    assert compare_outputs("int8", q + np.int8(2), q)["ok"] is False
    # float outputs dequantized from int8: one step of their scale, not 1e-3
    step = 1 / 256
    assert compare_outputs("int8", ref + step, ref, step=step)["ok"] is True
    assert compare_outputs("int8", ref + 2 * step, ref, step=step)["ok"] is False
    assert compare_outputs("int8", ref + step, ref)["ok"] is False
    # binary: the top-1 class decides; the difference is still reported
    moved = np.array([[0.2, 0.5, 0.3]], np.float32)
    assert compare_outputs("binary", moved, ref) == {
        "ok": True, "max_abs_diff": pytest.approx(0.2), "criterion": "top-1", "kind": "binary"
    }
    assert compare_outputs("binary", np.roll(ref, 1, axis=-1), ref)["ok"] is False
    # an int8 export of a binary network keeps float SIGN ops: judged by top-1 as well
    assert compare_outputs("int8", q + np.int8(9), q, binarizes=True)["ok"] is True
    assert compare_outputs("int8", np.roll(q, 1, axis=-1), q, binarizes=True)["ok"] is False
    assert compare_outputs("float", ref[0], ref)["ok"] is False  # shapes differ

"""INQ's power-of-two levels (arXiv:1702.03044 eqs. 2-4)."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.po2 import inq_exponents, po2_magnitudes, po2_project


@pytest.mark.parametrize(
    ("max_abs", "bits", "n1", "n2"),
    [
        (1.0, 5, 0, -7),  # 4/3 -> floor(log2) = 0; 2^(5-1)/2 = 8 magnitudes
        (0.75, 4, 0, -3),  # 4s/3 = 1 exactly: the boundary belongs to the upper exponent
        (0.7499, 4, -1, -4),
        (0.3, 3, -2, -3),  # 0.4 -> -2; two magnitudes
        (0.3, 2, -2, -2),  # ternary: one magnitude
        (5.0, 5, 2, -5),
    ],
)
def test_exponents_follow_eqs_2_and_3(max_abs, bits, n1, n2):
    assert inq_exponents(max_abs, bits) == (n1, n2)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_level_count_uses_the_bits(bits):
    n1, n2 = inq_exponents(0.37, bits)
    nonzero = 2 * (len(po2_magnitudes(n1, n2)) - 1)
    assert nonzero == 2 ** (bits - 1)  # plus zero: one bit of the b encodes it


def test_largest_weight_lies_in_the_top_bucket():
    # Eq. 2 chooses n1 so that 3/4·2^n1 <= max|W| < 3/2·2^n1: the largest weight rounds to 2^n1.
    for i, s in enumerate(np.random.default_rng(0).uniform(1e-4, 10.0, size=500)):
        n1, _ = inq_exponents(float(s), 5)
        assert 0.75 * 2.0**n1 <= s < 1.5 * 2.0**n1
        if i < 50:
            assert po2_project(np.float32([s]), n1, n1 - 7).numpy()[0] == 2.0**n1


def test_projection_rounds_to_the_nearest_level_by_hand():
    # n1 = 0, n2 = -2: P = {0, ±1/4, ±1/2, ±1}; midpoints 1/8, 3/8, 3/4.
    w = np.float32([0.1, 0.125, 0.3, 0.375, -0.6, 0.74, 0.75, 1.4, 5.0, -0.12, 0.0])
    want = np.float32([0.0, 0.25, 0.25, 0.5, -0.5, 0.5, 1.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(po2_project(w, 0, -2).numpy(), want)


def test_projection_is_nearest_and_idempotent_on_random_weights():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, size=(5, 5, 8, 16)).astype(np.float32)
    n1, n2 = inq_exponents(float(np.abs(w).max()), 4)
    q = po2_project(w, n1, n2).numpy()
    assert q.shape == w.shape and q.dtype == np.float32
    mags = po2_magnitudes(n1, n2)
    levels = np.concatenate([-mags, mags])
    assert np.isin(q, levels).all()
    best = np.abs(w[..., None] - levels).min(-1)
    np.testing.assert_array_equal(np.abs(w - q), best)  # no level is closer
    np.testing.assert_array_equal(po2_project(q, n1, n2).numpy(), q)
    assert np.array_equal(np.sign(q[q != 0]), np.sign(w[q != 0]))


def test_zero_is_positive_zero():
    q = po2_project(np.float32([-0.01, -0.0, 0.0, 0.01]), 0, -2).numpy()
    np.testing.assert_array_equal(q.view(np.uint32), np.zeros(4, np.uint32))


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 bits"):
        inq_exponents(1.0, 1)
    with pytest.raises(ValueError, match="positive"):
        inq_exponents(0.0, 4)
    with pytest.raises(ValueError, match="n2 <= n1"):
        po2_magnitudes(-3, -1)

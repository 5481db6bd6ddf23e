"""Symmetric uniform k-bit levels, round to nearest."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.uniform import (
    uniform_levels,
    uniform_max_level,
    uniform_project,
    uniform_step,
)


@pytest.mark.parametrize(("bits", "top"), [(2, 1), (3, 3), (4, 7), (5, 15), (8, 127)])
def test_grid_has_2_to_the_b_minus_1_levels(bits, top):
    assert uniform_max_level(bits) == top
    levels = uniform_levels(0.1, bits)
    assert len(levels) == 2**bits - 1 and levels[top] == 0.0
    np.testing.assert_array_equal(levels, -levels[::-1])


def test_projection_by_hand():
    # 3 bits, Δ = 0.25: levels {0, ±0.25, ±0.5, ±0.75}; halves round to even.
    w = np.float32([0.1, 0.13, -0.3, 0.375, 0.625, 0.74, 2.0, -2.0, 0.0])
    want = np.float32([0.0, 0.25, -0.25, 0.5, 0.5, 0.75, 0.75, -0.75, 0.0])
    np.testing.assert_array_equal(uniform_project(w, 0.25, 3).numpy(), want)


@pytest.mark.parametrize("bits", [2, 4, 5])
def test_projection_is_nearest_on_random_weights(bits):
    w = np.random.default_rng(bits).normal(0, 0.1, size=(512, 64)).astype(np.float32)
    step = uniform_step(float(np.abs(w).max()), bits)
    q = uniform_project(w, step, bits).numpy()
    levels = uniform_levels(step, bits)
    assert np.isin(q, levels).all()
    # Nearest level, up to the float32 rounding of w/Δ:
    best = np.abs(w[..., None] - levels).min(-1)
    np.testing.assert_allclose(np.abs(w - q), best, atol=1e-6 * step)
    assert q.max() == levels[-1] or q.min() == levels[0]  # max|W| lands on the end of the grid
    np.testing.assert_array_equal(uniform_project(q, step, bits).numpy(), q)


def test_zero_is_positive_zero():
    q = uniform_project(np.float32([-0.01, -0.0, 0.0, 0.01]), 0.25, 3).numpy()
    np.testing.assert_array_equal(q.view(np.uint32), np.zeros(4, np.uint32))


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 bits"):
        uniform_max_level(1)
    with pytest.raises(ValueError, match="positive"):
        uniform_step(float("nan"), 4)

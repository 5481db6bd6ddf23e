"""Ternary quantizers: TWN, exact ternary and TTQ against hand-computed values and the
papers' gradients."""

import itertools

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.quantizers.ternary import (
    ExactTernary,
    TtqTernary,
    TwnTernary,
    exact_ternarize,
    ttq_ternarize,
    twn_ternarize,
)

W = np.array([0.1, -0.9, 0.5, -0.05, 1.3, -0.4], dtype=np.float32)


def test_twn_threshold_and_scale_by_hand():
    # E|W| = 3.25/6; Δ = 0.7 E|W| = 0.379...; kept: -0.9, 0.5, 1.3, -0.4 -> α = 3.1/4
    alpha = 3.1 / 4
    expected = alpha * np.array([0, -1, 1, 0, 1, -1])
    np.testing.assert_allclose(twn_ternarize(tf.constant(W)), expected, rtol=1e-6)


def test_twn_per_channel_uses_one_alpha_per_output_channel():
    w = np.stack([W, 10 * W], axis=-1)  # (6, 2): the second channel 10x larger
    out = twn_ternarize(tf.constant(w), axis=-1).numpy()
    np.testing.assert_allclose(out[:, 0], twn_ternarize(tf.constant(W)), rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], 10 * out[:, 0], rtol=1e-6)
    # Per tensor, the small channel would be mostly zero:
    assert np.count_nonzero(twn_ternarize(tf.constant(w)).numpy()[:, 0]) < 4


def test_exact_ternary_by_hand():
    # sorted |W|: 1.3, .9, .5, .4, .1, .05; S_k = 1.3, 2.2, 2.7, 3.1, 3.2, 3.25;
    # S_k^2/k = 1.69, 2.42, 2.43, 2.4025, 2.048, 1.76 -> k* = 3, α = 2.7 / 3
    expected = 0.9 * np.array([0, -1, 1, 0, 1, 0])
    np.testing.assert_allclose(exact_ternarize(tf.constant(W)), expected, rtol=1e-6)


def _brute_force_error(w: np.ndarray) -> float:
    best = np.inf
    for t in itertools.product((-1, 0, 1), repeat=w.size):
        t = np.array(t, dtype=np.float64)
        if not t.any():
            continue
        alpha = max(float(w @ t) / float(t @ t), 0.0)
        best = min(best, float(((w - alpha * t) ** 2).sum()))
    return best


def test_exact_ternary_is_the_global_optimum_on_small_tensors():
    rng = np.random.default_rng(3)
    for _ in range(5):
        w = rng.normal(size=7).astype(np.float32)
        err = float(((w - exact_ternarize(tf.constant(w)).numpy()) ** 2).sum())
        assert err == pytest.approx(_brute_force_error(w.astype(np.float64)), rel=1e-5)


@pytest.mark.parametrize("axis", [None, -1])
def test_exact_ternary_error_never_exceeds_twn(axis):
    rng = np.random.default_rng(0)
    strictly_better = 0
    for shape in [(3, 3, 8, 16), (100, 10), (5, 5, 1, 32), (64,)]:
        for dist in (rng.normal, rng.uniform, rng.laplace):
            w = tf.constant(dist(size=shape).astype(np.float32))
            ax = None if len(shape) == 1 else axis
            twn = float(tf.reduce_sum((w - twn_ternarize(w, ax)) ** 2))
            exact = float(tf.reduce_sum((w - exact_ternarize(w, ax)) ** 2))
            assert exact <= twn * (1 + 1e-6)
            strictly_better += exact < twn * (1 - 1e-4)
    assert strictly_better >= 6  # the heuristic is not optimal in general


@pytest.mark.parametrize("cls", [TwnTernary, ExactTernary])
def test_projection_quantizers_pass_gradients_straight_through(cls):
    w = tf.Variable(W)
    dy = tf.constant([1.0, -2.0, 3.0, 4.0, -5.0, 6.0])
    with tf.GradientTape() as tape:
        out = cls()(w)
        loss = tf.reduce_sum(out * dy)
    np.testing.assert_allclose(tape.gradient(loss, w), dy)
    fn = twn_ternarize if cls is TwnTernary else exact_ternarize
    np.testing.assert_allclose(out, fn(tf.constant(W)), rtol=1e-6)


def test_ttq_forward_and_the_papers_gradients():
    # Δ = t max|W| = 0.5 * 1.3 = 0.65: positive {1.3}, negative {-0.9}, the rest zero
    w = tf.Variable(W)
    wp, wn = tf.Variable(2.0), tf.Variable(3.0)
    g = tf.constant([1.0, -2.0, 3.0, 4.0, -5.0, 6.0])
    with tf.GradientTape() as tape:
        out = ttq_ternarize(w, wp, wn, threshold=0.5)
        loss = tf.reduce_sum(out * g)
    np.testing.assert_allclose(out, [0, -3.0, 0, 0, 2.0, 0])
    dw, dwp, dwn = tape.gradient(loss, [w, wp, wn])
    assert float(dwp) == pytest.approx(-5.0)  # Σ g over w > Δ
    assert float(dwn) == pytest.approx(2.0)  # −Σ g over w < −Δ
    # eq. (8): Wp·g, g, Wn·g on the positive, zero and negative regions
    np.testing.assert_allclose(dw, [1.0, 3.0 * -2.0, 3.0, 4.0, 2.0 * -5.0, 6.0])


def test_ttq_scalars_are_tracked_trained_and_saved(tmp_path):
    from pipeline.serialization import load_keras_model

    inputs = tf.keras.Input((4,))
    layer = lq.layers.QuantDense(3, kernel_quantizer=TtqTernary(threshold=0.05), use_bias=False)
    model = tf.keras.Model(inputs, layer(inputs))
    names = [v.name for v in model.trainable_weights]
    assert any("wp" in n for n in names) and any("wn" in n for n in names)
    model.compile(tf.keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    model.fit(x, np.ones((32, 3), np.float32) * 5.0, epochs=2, verbose=0)
    q = layer.kernel_quantizer
    assert float(q.wp) != 1.0 and float(q.wn) != 1.0
    model.save(tmp_path / "m.keras")
    restored = load_keras_model(tmp_path / "m.keras")
    rq = restored.layers[-1].kernel_quantizer
    assert isinstance(rq, TtqTernary)
    assert (float(rq.wp), float(rq.wn)) == (float(q.wp), float(q.wn))
    np.testing.assert_allclose(restored(x), model(x), rtol=1e-6)

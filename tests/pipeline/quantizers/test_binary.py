"""Binary quantizers: forward values on hand-computed tensors, gradients against the papers."""

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.quantizers.binary import (
    GlorotClip,
    StochasticBinary,
    XnorWeightSign,
    ap2,
    glorot_bound,
    hard_sigmoid,
    xnor_weight_sign,
)


def test_hard_sigmoid_is_clipped_linear():
    x = tf.constant([-2.0, -1.0, -0.5, 0.0, 0.6, 1.0, 3.0])
    np.testing.assert_allclose(hard_sigmoid(x), [0, 0, 0.25, 0.5, 0.8, 1, 1])


def test_ap2_rounds_the_exponent_and_keeps_the_sign():
    x = tf.constant([0.0, 1.0, 3.0, -3.0, 0.3, 5.0, -0.7, 1e-3])
    # log2: 1.585 -> 2, 0.3 -> -1.737 -> -2, 5 -> 2.32 -> 2, 0.7 -> -0.515 -> -1, 1e-3 -> -10
    np.testing.assert_array_equal(ap2(x), [0.0, 1.0, 4.0, -4.0, 0.25, 4.0, -0.5, 2.0**-10])


def test_stochastic_binary_mean_is_hard_sigmoid():
    """P(w_b = +1) = clip((w+1)/2, 0, 1): 40,000 draws per weight, fixed seed."""
    tf.keras.utils.set_random_seed(1234)
    w = tf.constant([-1.5, -0.8, -0.3, 0.0, 0.5, 0.9, 1.2])
    draws = 40_000
    q = StochasticBinary()
    samples = q(tf.tile(w[None, :], [draws, 1]), training=True).numpy()
    assert set(np.unique(samples)) == {-1.0, 1.0}
    p_plus = (samples == 1.0).mean(axis=0)
    expected = np.clip((w.numpy() + 1) / 2, 0, 1)
    # 5 standard errors; sigmoid(0.5) = 0.62 vs hard sigmoid 0.75 would fail by far.
    tolerance = 5 * np.sqrt(np.maximum(expected * (1 - expected), 1e-12) / draws)
    assert np.all(np.abs(p_plus - expected) <= tolerance + 1e-9), (p_plus, expected)


def test_glorot_bound_is_half_the_glorot_uniform_limit():
    # BinaryConnect / BinaryNet code: H = sqrt(1.5 / (fan_in + fan_out)), receptive field
    # counted in both fans for convolutions.
    assert glorot_bound((784, 512)) == pytest.approx(np.sqrt(1.5 / 1296))
    assert glorot_bound((5, 5, 32, 64)) == pytest.approx(np.sqrt(1.5 / (25 * 32 + 25 * 64)))
    assert glorot_bound((5, 5, 32, 64)) == pytest.approx(0.025)


def test_glorot_clip_clips_to_plus_minus_h_of_the_kernel_shape():
    w = tf.constant([[-1.0, 0.01], [0.5, -0.02]])
    h = np.sqrt(1.5 / 4)  # 0.612
    np.testing.assert_allclose(GlorotClip()(w), [[-h, 0.01], [0.5, -0.02]], rtol=1e-6)


def test_stochastic_binary_probability_scales_with_the_bound():
    """P(w_b = +1) = hard_sigmoid(w / H): w = H/2 gives 0.75, w = -H gives 0, w = 0.6 H
    with H = "glorot" of the kernel's shape gives 0.8 (mean 2p - 1 = 0.6)."""
    tf.keras.utils.set_random_seed(7)
    q = StochasticBinary(bound=0.2)
    w = tf.tile(tf.constant([[0.1, -0.2, 0.0, 0.3]]), [40_000, 1])
    p_plus = (q(w, training=True).numpy() == 1.0).mean(axis=0)
    np.testing.assert_allclose(p_plus, [0.75, 0.0, 0.5, 1.0], atol=5 * np.sqrt(0.25 / 40_000))
    shape = (400, 600)
    w = tf.fill(shape, 0.6 * glorot_bound(shape))
    mean = StochasticBinary(bound="glorot")(w, training=True).numpy().mean()
    assert mean == pytest.approx(0.6, abs=5 * np.sqrt(1 / 240_000))
    assert StochasticBinary(bound="glorot").get_config()["bound"] == "glorot"


def test_stochastic_binary_resamples_in_training_and_is_sign_at_inference():
    tf.keras.utils.set_random_seed(0)
    w = tf.fill([1000], 0.1)
    q = StochasticBinary()
    first, second = q(w, training=True).numpy(), q(w, training=True).numpy()
    assert (first != second).any()  # a fresh sample per forward pass
    x = tf.constant([-0.4, 0.0, 0.4])
    np.testing.assert_array_equal(q(x, training=False), [-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(q(x), [-1.0, 1.0, 1.0])  # default: inference


def test_stochastic_binary_gradient_is_straight_through():
    w = tf.Variable([-0.9, 0.2, 0.7])
    dy = tf.constant([1.0, -2.0, 3.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(StochasticBinary()(w, training=True) * dy)
    np.testing.assert_array_equal(tape.gradient(loss, w), dy)


def test_xnor_weight_sign_scales_each_output_filter_by_its_mean_magnitude():
    # Dense kernel (in=3, out=2): column 0 = [0.5, -1.0, 1.5], column 1 = [-0.2, 0.4, 0.0]
    w = tf.constant([[0.5, -0.2], [-1.0, 0.4], [1.5, 0.0]])
    alpha = np.array([1.0, 0.2])  # ||W||_1 / n per column
    expected = alpha * np.array([[1, -1], [-1, 1], [1, 1]])
    np.testing.assert_allclose(xnor_weight_sign(w), expected, rtol=1e-6)
    np.testing.assert_allclose(XnorWeightSign()(w), expected, rtol=1e-6)


def test_xnor_weight_gradient_is_one_over_n_plus_alpha_ste():
    """∂C/∂W_i = ∂C/∂W̃_i (1/n + α 1{|W_i| ≤ 1}) — XNOR-Net §3.1."""
    w = tf.Variable([[0.5, -0.2], [-1.0, 0.4], [1.5, 0.0]])
    dy = tf.constant([[1.0, 2.0], [3.0, -1.0], [-2.0, 4.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(xnor_weight_sign(w) * dy)
    n, alpha = 3.0, np.array([1.0, 0.2])
    mask = np.abs(w.numpy()) <= 1.0  # 1.5 is outside
    expected = dy.numpy() * (1 / n + alpha * mask)
    np.testing.assert_allclose(tape.gradient(loss, w), expected, rtol=1e-6)


@pytest.mark.parametrize("cls", [StochasticBinary, XnorWeightSign])
def test_quantizers_round_trip_through_keras_serialization(cls):
    q = cls()
    restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(q))
    assert type(restored) is cls
    assert restored.get_config() == q.get_config()


def test_stochastic_binary_follows_the_models_training_flag_inside_a_layer():
    """Keras hands ``training`` down to the kernel quantizer of a larq layer, also in a
    compiled (tf.function) call as ``fit`` makes it."""
    import larq as lq

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((64,))
    layer = lq.layers.QuantDense(64, kernel_quantizer=StochasticBinary(), use_bias=False)
    model = tf.keras.Model(inputs, layer(inputs))
    layer.kernel.latent_variable.assign(tf.fill((64, 64), 0.2))  # P(+1) = 0.6
    x = tf.eye(64)  # the output rows are the quantized kernel's rows
    call = tf.function(lambda training: model(x, training=training))
    a, b = call(True).numpy(), call(True).numpy()
    assert (a != b).any() and 0.5 < (a == 1).mean() < 0.7
    np.testing.assert_array_equal(call(False), np.ones((64, 64)))

"""Shift-based AdaMax (BinaryNet Algorithm 2) against two hand-computed steps."""

import numpy as np
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.methods.optimizers import ShiftAdaMax


def test_two_steps_by_hand():
    theta = tf.Variable([1.0, -2.0])
    opt = ShiftAdaMax()  # α = 2^-10, β1 = 1 - 2^-3, β2 = 1 - 2^-10
    opt.apply_gradients([(tf.constant([0.3, -0.05]), theta)])
    # m = [0.0375, -0.00625], v = [0.3, 0.05]; AP2(2^-10 / (1 - 0.875)) = 2^-7;
    # AP2(1/0.3) = 4, AP2(1/0.05) = 16 -> update 2^-7 * [0.15, -0.1]
    np.testing.assert_allclose(theta.numpy(), [1 - 0.15 / 128, -2 + 0.1 / 128], rtol=1e-6)
    opt.apply_gradients([(tf.constant([0.1, 0.2]), theta)])
    # m = [0.0453125, 0.01953125], v = [0.3 * (1 - 2^-10), 0.2];
    # AP2(2^-10 / (1 - 0.875^2)) = AP2(0.00417) = 2^-8; AP2(1/v) = [4, 4]
    step2 = 2.0**-8 * np.array([0.0453125 * 4, 0.01953125 * 4])
    np.testing.assert_allclose(
        theta.numpy(), [1 - 0.15 / 128 - step2[0], -2 + 0.1 / 128 - step2[1]], rtol=1e-6
    )


def test_round_trips_through_keras_serialization():
    opt = ShiftAdaMax(learning_rate=2.0**-8)
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt))
    assert isinstance(restored, ShiftAdaMax)
    assert restored.get_config()["learning_rate"] == 2.0**-8

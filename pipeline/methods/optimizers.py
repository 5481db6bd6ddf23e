"""Optimizers the methods' papers prescribe beyond Keras's own."""

from __future__ import annotations

import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.quantizers.binary import ap2


@tf.keras.utils.register_keras_serializable(package="bitlite")
class ShiftAdaMax(tf.keras.optimizers.Adamax):
    r"""Shift-based AdaMax — BinaryNet (Hubara et al., NIPS 2016, arXiv:1602.02830),
    Algorithm 2:

    \\[ m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \max(\beta_2 v_{t-1}, |g_t|), \\]
    \\[ \theta_t = \theta_{t-1} - \big(\alpha \lll\ggg (1-\beta_1^t)\big)\cdot
        \big(m_t \lll\ggg v_t^{-1}\big) \\]

    where ``a ⋘⋙ b`` is a binary shift: ``AP2(α / (1 − β1^t)) · m_t · AP2(1 / (v_t + ε))``
    (the authors' code rounds both to powers of two the same way). Defaults are the paper's:
    ``α = 2^-10``, ``1 − β1 = 2^-3``, ``1 − β2 = 2^-10``.
    """

    def __init__(
        self,
        learning_rate: float = 2.0**-10,
        beta_1: float = 1.0 - 2.0**-3,
        beta_2: float = 1.0 - 2.0**-10,
        epsilon: float = 1e-8,
        name: str = "ShiftAdaMax",
        **kwargs,
    ):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name=name, **kwargs)

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable) -> None:
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._m[index], self._u[index]
        m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
        v.assign(tf.maximum(tf.cast(self.beta_2, dtype) * v, tf.abs(gradient)))
        step_size = ap2(lr / (1.0 - tf.pow(beta_1, step)))
        variable.assign_sub(step_size * m * ap2(1.0 / (v + self.epsilon)))

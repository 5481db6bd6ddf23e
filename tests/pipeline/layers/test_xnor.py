"""XNOR-Net layers: the activation scale K (eq. 11) and β (eq. 10) on small tensors."""

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.layers.xnor import XnorConv2D, XnorDense
from pipeline.quantizers.binary import XnorWeightSign


def test_conv_output_is_binary_conv_times_k_alpha():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    layer = XnorConv2D(2, 2, use_bias=False, input_quantizer="ste_sign",
                       kernel_quantizer=XnorWeightSign())  # fmt: skip
    out = layer(tf.constant(x)).numpy()
    w = layer.kernel.latent_variable.numpy()  # (2, 2, 3, 2)
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    sx, sw = np.where(x >= 0, 1.0, -1.0), np.where(w >= 0, 1.0, -1.0)
    a = np.abs(x).mean(axis=-1)  # (2, 4, 4)
    expected = np.zeros((2, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            k = a[:, i : i + 2, j : j + 2].mean(axis=(1, 2))  # box filter 1/(wh)
            binary = np.einsum("bhwc,hwco->bo", sx[:, i : i + 2, j : j + 2], sw)
            expected[:, i, j] = binary * alpha * k[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_dense_output_is_scaled_by_beta():
    x = np.array([[0.5, -2.0, 1.0], [-0.1, 0.2, 0.3]], np.float32)
    layer = XnorDense(2, use_bias=False, input_quantizer="ste_sign",
                      kernel_quantizer=XnorWeightSign())  # fmt: skip
    out = layer(tf.constant(x)).numpy()
    w = layer.kernel.latent_variable.numpy()
    binary = np.where(x >= 0, 1.0, -1.0) @ (np.abs(w).mean(axis=0) * np.where(w >= 0, 1.0, -1.0))
    beta = np.abs(x).mean(axis=1, keepdims=True)  # 7/6 and 0.2
    np.testing.assert_allclose(out, binary * beta, rtol=1e-5)


def test_bias_is_refused_because_k_would_scale_it():
    with pytest.raises(ValueError, match="use_bias=False"):
        XnorDense(2, use_bias=True)(tf.zeros((1, 3)))

"""LeNet-5 as the ternary/binary papers train it on MNIST.

TWN (arXiv:1605.04711, §4) uses ``32C5 - MP2 - 64C5 - MP2 - 512FC - 10``: the Caffe
LeNet-5 widened so the channel counts are multiples of 32, which is also what LCE's
bitpacking wants (32 channels per word). Larq's recommended order is used:
convolution → max-pool → batch norm → activation.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.methods import Method, Position


def lenet5(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    inputs = tf.keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64)):
        x = method.conv2d(filters, 5, Position.FIRST if i == 0 else Position.HIDDEN)(x)
        x = tf.keras.layers.MaxPool2D(2)(x)
        x = method.normalization()(x)
        x = method.activation(x)
    x = tf.keras.layers.Flatten()(x)
    x = method.dense(512, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.dense(num_classes, Position.LAST)(x)
    x = method.normalization()(x)
    outputs = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name="lenet5")


# Read by models.registry, which imports this module (never the reverse).
BUILDERS = {"lenet5": lenet5}

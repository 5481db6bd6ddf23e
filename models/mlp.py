"""The permutation-invariant MNIST MLPs of BinaryConnect and BinaryNet.

BinaryConnect (arXiv:1511.00363, §3.1): 3 hidden layers of 1024 units. BinaryNet
(arXiv:1602.02830, §2.6): 3 hidden layers of 4096 units (``mlp4096``). Both put batch
norm after every layer; there is no convolution, so the input is only flattened.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.methods import Method, Position


def mlp(method: Method, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int):
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Flatten()(inputs)
    for i in range(depth):
        x = method.dense(width, Position.FIRST if i == 0 else Position.HIDDEN)(x)
        x = method.normalization()(x)
        x = method.activation(x)
    x = method.dense(num_classes, Position.LAST)(x)
    x = method.normalization()(x)
    outputs = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name=f"mlp{width}")


def mlp1024(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    return mlp(method, input_shape, num_classes, width=1024, depth=3)


def mlp4096(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    return mlp(method, input_shape, num_classes, width=4096, depth=3)


# Read by models.registry, which imports this module (never the reverse).
BUILDERS = {"mlp1024": mlp1024, "mlp4096": mlp4096}

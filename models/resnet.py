"""ResNet-18 (He et al., arXiv:1512.03385, table 1), as seed 004 table 3 lists it.

``resnet18``: the ImageNet network — 7×7/2 stem convolution, 3×3/2 max pool, eight basic
residual units (two 3×3 convolutions each) of 64, 64, 128, 128, 256, 256, 512, 512
channels, global average pooling, FC 1000. ``resnet18_cifar``: the usual CIFAR variant
(3×3/1 stem, no max pool) for 32×32 inputs; the units are the same.

A unit adds its two-convolution branch to the shortcut; where the channel count changes
(units 3, 5, 7) the shortcut is one 1×1 stride-2 convolution, as the seed describes
("the value passed through one convolution layer"), and built by the method like every
other convolution. Deviation from the seed: table 3 prints 56×56 as every unit's output
size, which contradicts its own description of ResNet-18; we downsample at units 3, 5
and 7 (56 → 28 → 14 → 7) as He et al. do. Parameter counts do not depend on it.
No biases (batch norm follows every convolution); the dense layer is a 1×1 convolution
and binarized inputs use 'same-one' padding, for LCE (see :mod:`models.blocks`).
"""

from __future__ import annotations

import tensorflow as tf

from models import blocks
from pipeline.methods import Method, Position

# Output channels of the eight residual units; a unit that changes the count strides by 2.
UNITS = (64, 64, 128, 128, 256, 256, 512, 512)


def residual_unit(method: Method, x: tf.Tensor, filters: int) -> tf.Tensor:
    strides = 1 if x.shape[-1] == filters else 2
    y = blocks.conv(method, filters, 3, Position.HIDDEN, strides=strides)(x)
    y = method.normalization()(y)
    y = method.activation(y)
    y = blocks.conv(method, filters, 3, Position.HIDDEN)(y)
    y = method.normalization()(y)
    shortcut = x
    if strides != 1:
        shortcut = method.conv2d(filters, 1, Position.HIDDEN, strides=strides)(x)
        shortcut = method.normalization()(shortcut)
    return method.activation(tf.keras.layers.Add()([y, shortcut]))


def resnet18_body(method: Method, x: tf.Tensor, num_classes: int) -> tf.Tensor:
    for filters in UNITS:
        x = residual_unit(method, x, filters)
    x = tf.keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = blocks.dense(method, num_classes, Position.LAST, x)
    return blocks.logits_to_probabilities(method, x)


def resnet18(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """Seed 004 table 3: the ImageNet ResNet-18 (224×224 inputs → 112 → 56 → … → 7)."""
    inputs = tf.keras.Input(input_shape)
    x = blocks.conv(method, 64, 7, Position.FIRST, strides=2)(inputs)
    x = method.normalization()(x)
    x = method.activation(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
    return tf.keras.Model(inputs, resnet18_body(method, x, num_classes), name="resnet18")


def resnet18_cifar(method: Method, input_shape: tuple[int, ...], num_classes: int):
    """ResNet-18 for 32×32 inputs: a 3×3 stride-1 stem and no max pool."""
    inputs = tf.keras.Input(input_shape)
    x = blocks.conv(method, 64, 3, Position.FIRST)(inputs)
    x = method.normalization()(x)
    x = method.activation(x)
    return tf.keras.Model(inputs, resnet18_body(method, x, num_classes), name="resnet18_cifar")


# Read by models.registry, which imports this module (never the reverse).
BUILDERS = {"resnet18": resnet18, "resnet18_cifar": resnet18_cifar}

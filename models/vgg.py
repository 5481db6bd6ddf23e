"""VGG-8 and VGG-9 for CIFAR-10, as seed 004 tables 1–2 give them.

Both are ``128C3 - 128C3 - MP2 - 256C3 - 256C3 - MP2 - 512C3 - 512C3 - MP2`` on 32×32
inputs, then ``FC 1024 - FC 1024 - 10`` (VGG-9: BinaryNet's CIFAR-10 network, arXiv:
1602.02830 §2.6) or ``FC 1024 - 10`` (VGG-8: TWN's "VGG-7", arXiv:1605.04711 §4, which
does not count its output layer).

Deviations from the seed (Chainer, with biases, ReLU): no biases, because batch norm
follows every layer (larq's convention and BinaryNet's); each layer's activation comes
from the method (BinaryNet's sign lives in the next layer's input quantizer); the dense
layers are convolutions (FC1 4×4 over the last feature map, then 1×1) and binarized
inputs use 'same-one' padding, as LCE's optimization guide asks (see :mod:`models.blocks`). Parameter counts per layer match the
seed's tables exactly; pooling sits between a convolution and its batch norm, larq's
order (as in :mod:`models.lenet`).
"""

from __future__ import annotations

import tensorflow as tf

from models import blocks
from pipeline.methods import Method, Position

# (filters, pool after) for the six 3×3 convolutions of tables 1 and 2.
CONVS = ((128, False), (128, True), (256, False), (256, True), (512, False), (512, True))


def vgg(method: Method, input_shape: tuple[int, ...], num_classes: int, fc: tuple[int, ...],
        name: str) -> tf.keras.Model:  # fmt: skip
    inputs = tf.keras.Input(input_shape)
    x = inputs
    for i, (filters, pool) in enumerate(CONVS):
        x = blocks.conv(method, filters, 3, Position.FIRST if i == 0 else Position.HIDDEN)(x)
        if pool:
            x = tf.keras.layers.MaxPool2D(2)(x)
        x = method.normalization()(x)
        x = method.activation(x)
    # FC1 is a 4×4 'valid' convolution (dense over the (H, W, C)-ordered 8192 features),
    # the later dense layers 1×1 convolutions.
    for units in fc:
        x = blocks.dense(method, units, Position.HIDDEN, x)
        x = method.normalization()(x)
        x = method.activation(x)
    x = blocks.dense(method, num_classes, Position.LAST, x)
    return tf.keras.Model(inputs, blocks.logits_to_probabilities(method, x), name=name)


def vgg9(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """Seed 004 table 1: six convolutions, FC 1024, FC 1024, output."""
    return vgg(method, input_shape, num_classes, fc=(1024, 1024), name="vgg9")


def vgg8(method: Method, input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """Seed 004 table 2: six convolutions, FC 1024, output."""
    return vgg(method, input_shape, num_classes, fc=(1024,), name="vgg8")


# Read by models.registry, which imports this module (never the reverse).
BUILDERS = {"vgg9": vgg9, "vgg8": vgg8}

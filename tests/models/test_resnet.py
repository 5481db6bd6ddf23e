"""ResNet-18 against seed 004 table 3 and He et al.'s parameter count."""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

import pipeline  # noqa: F401
from models import build_model
from pipeline.methods import make_method

# Seed 004 table 3: (layer, input maps, output maps); our output sizes follow He et al.
UNITS = [(64, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
SIZES = [56, 56, 28, 28, 14, 14, 7, 7]
# torchvision's resnet18 has 11,689,512 parameters: minus the FC bias (1,000) and the
# trainable batch-norm γ/β (2 × 4,800 channels) leaves the convolution + FC weights.
RESNET18_WEIGHTS = 11_689_512 - 1_000 - 2 * 4_800


def convs(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]


def expected_layers() -> list[tuple[int, int, int, int]]:
    """(kernel, in, out, output size) in build order: stem, each unit, output."""
    rows = [(7, 3, 64, 112)]
    for (cin, cout), size in zip(UNITS, SIZES, strict=True):
        rows += [(3, cin, cout, size), (3, cout, cout, size)]
        if cin != cout:
            rows.append((1, cin, cout, size))  # the one-convolution shortcut
    return rows + [(1, 512, 1000, 1)]


def test_imagenet_resnet18_matches_table_3():
    model = build_model("resnet18", make_method("float"), (224, 224, 3), 1000)
    layers = convs(model)
    assert len(layers) == len(expected_layers()) == 1 + 16 + 3 + 1
    for layer, (k, cin, cout, size) in zip(layers, expected_layers(), strict=True):
        assert layer.count_params() == k * k * cin * cout
        assert tuple(layer.kernel.shape) == (k, k, cin, cout)
        assert layer.output.shape[1] == size
    assert sum(layer.count_params() for layer in layers) == RESNET18_WEIGHTS
    pool = next(la for la in model.layers if isinstance(la, tf.keras.layers.MaxPool2D))
    assert pool.output.shape[1:] == (56, 56, 64)  # table 3's Max Pool row


def test_cifar_variant_keeps_the_units_and_runs_binarized():
    model = build_model("resnet18_cifar", make_method("bnn"), (32, 32, 3), 10)
    layers = convs(model)
    assert tuple(layers[0].kernel.shape) == (3, 3, 3, 64)
    assert layers[0].output.shape[1] == 32
    body = sum(la.count_params() for la in layers[1:-1])
    assert body == RESNET18_WEIGHTS - 7 * 7 * 3 * 64 - 512 * 1000
    assert layers[-1].output.shape[1] == 1 and layers[-1].kernel.shape[-1] == 10
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert model(x, training=False).shape == (2, 10)

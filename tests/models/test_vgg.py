"""VGG-8/VGG-9 against seed 004 tables 1–2: per-layer shapes and parameter counts."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401
from models import build_model
from pipeline.methods import make_method

# Seed 004 table 1 (VGG-9): (layer, input maps, output maps, output size); 3×3 convolutions.
TABLE_1 = [
    ("Conv1", 3, 128, 32), ("Conv2", 128, 128, 32),
    ("Conv3", 128, 256, 16), ("Conv4", 256, 256, 16),
    ("Conv5", 256, 512, 8), ("Conv6", 512, 512, 8),
    ("FC1", 8192, 1024, 1), ("FC2", 1024, 1024, 1), ("Output", 1024, 10, 1),
]  # fmt: skip
TABLE_2 = TABLE_1[:6] + [("FC", 8192, 1024, 1), ("Output", 1024, 10, 1)]


def weight_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]


@pytest.mark.parametrize("name,table", [("vgg9", TABLE_1), ("vgg8", TABLE_2)])
def test_layers_match_the_seed_tables(name, table):
    model = build_model(name, make_method("float"), (32, 32, 3), 10)
    layers = weight_layers(model)
    assert len(layers) == len(table)
    for layer, (label, cin, cout, size) in zip(layers, table, strict=True):
        k = 3 if label.startswith("Conv") else 1
        assert layer.count_params() == k * k * cin * cout, label  # no biases: BN follows
        # FC1 reads the 4 × 4 × 512 map as a 4×4 'valid' convolution: 8192 inputs
        assert np.prod(layer.kernel.shape[:-1]) == k * k * cin, label
        assert layer.kernel.shape[-1] == cout, label
        assert layer.output.shape[1] == size, label  # before the pooling that follows
    # Every weight count is the seed's; the remainder is batch norm (4 per channel).
    weights = sum((9 if lbl.startswith("Conv") else 1) * ci * co for lbl, ci, co, _ in table)
    assert model.count_params() == weights + 4 * sum(co for _, _, co, _ in table)


def test_pooling_gives_the_tables_spatial_sizes():
    model = build_model("vgg9", make_method("float"), (32, 32, 3), 10)
    pools = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.MaxPool2D)]
    assert [p.output.shape[1] for p in pools] == [16, 8, 4]  # 4 × 4 × 512 = 8192 into FC1


def test_binary_vgg_uses_lce_friendly_padding_and_runs():
    model = build_model("vgg8", make_method("bnn"), (32, 32, 3), 10)
    convs = weight_layers(model)
    assert convs[0].pad_values == 0.0  # the image is not binarized: zero padding
    assert all(c.pad_values == 1.0 for c in convs[1:6])  # 'same-one' for binary inputs
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_float_vgg_converts_with_stock_tflite_and_xnnpack_takes_it():
    """Regression: FC1 behind a Keras ``Reshape`` traced a SHAPE/PACK chain (unknown batch),
    the plain converter rejected the 1×1 Conv2D that followed (tf.Conv2D, flex op needed),
    so ``--baselines`` and the latency bench failed on VGG."""
    from ai_edge_litert.interpreter import Interpreter  # LiteRT: the default host (3.11-3.13)

    model = build_model("vgg8", make_method("float"), (32, 32, 3), 10)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "DELEGATE" in ops and not ops & {"SHAPE", "PACK"}

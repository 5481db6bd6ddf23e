"""Baselines: float and int8-qat (TF-MOT quantize_model) — wrapping, training, reload, export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.methods import make_method


def test_float_is_full_precision(build_tiny):
    model = build_tiny(make_method("float"))
    assert make_method("float").bits() == {"w": 32, "a": 32, "g": 32}
    for layer in model.layers:
        assert getattr(layer, "kernel_quantizer", None) is None
        assert getattr(layer, "input_quantizer", None) is None


def test_int8_qat_wraps_every_layer_with_tfmot(build_tiny):
    method = make_method("int8-qat")
    assert method.bits() == {"w": 8, "a": 8, "g": 32}
    model = method.wrap_model(build_tiny(method))
    names = [type(layer).__name__ for layer in model.layers]
    assert names[1] == "QuantizeLayer"  # the input is quantized to int8
    assert all(name == "QuantizeWrapperV2" for name in names[2:])
    # Fake quantization: a weight moved by less than half a step leaves the output alone.
    conv = model.layers[2]
    assert any("kernel_min" in v.name for v in conv.non_trainable_weights + conv.weights)


def test_int8_qat_trains_reloads_and_exports_int8(train_tiny, tiny_data, export_matches, tmp_path):
    model, history = train_tiny(make_method("int8-qat"), steps=8, epochs=2)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    x = tiny_data[0][:32]
    path = tmp_path / "qat.keras"
    model.save(path)
    from pipeline.serialization import load_keras_model

    loaded = load_keras_model(path)  # TF-MOT's .keras reload bug is worked around
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    # int8 kernels vs Keras' float fake-quant simulation: within a few output steps.
    flatbuffer = export_matches(model, x, atol=0.02)
    from pipeline.export.exporter import describe_flatbuffer, exported_as_float

    described = describe_flatbuffer(flatbuffer)
    assert described["ops"].get("QUANTIZE", 0) >= 1 and described["ops"].get("CONV_2D") == 2
    # Its convolutions run in int8: the export report must not call it a float model.
    assert described["macs"]["int8"] > 0
    assert not exported_as_float({**described, "layers": []})


def test_int8_qat_model_is_tf_keras(build_tiny):
    method = make_method("int8-qat")
    model = build_tiny(method)
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert len(convs) == 2 and all(type(c) is tf.keras.layers.Conv2D for c in convs)  # not larq

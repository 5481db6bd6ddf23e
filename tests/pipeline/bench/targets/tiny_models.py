"""Tiny float, int8 and binary .tflite models for bench tests, built once per session.

Float and int8 come from TFLite's converter (int8 calibrated on a representative set),
the binary one from Larq Compute Engine's converter (LceQuantize + LceBconv2d ops).
Both test files import this module by name, so the models are converted once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

SHAPE = (8, 8, 1)
_built: dict[str, Path] = {}


def models() -> dict[str, Path]:
    """{"float": ..., "int8": ..., "int8-float-io": ..., "binary": ...} paths in a session
    temp directory."""
    if not _built:
        out = Path(tempfile.mkdtemp(prefix="bitlite-tiny-models-"))
        atexit.register(shutil.rmtree, out, True)
        _built.update(_convert(out))
    return dict(_built)


def _convert(out: Path) -> dict[str, Path]:
    import larq as lq
    import larq_compute_engine as lce
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = tf.keras.layers.Flatten()(x)
    float_model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(x))

    paths = {k: out / f"tiny_{k}.tflite" for k in ("float", "int8", "binary")}
    paths["float"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(float_model).convert())

    rng = np.random.default_rng(0)
    calibration = [rng.uniform(-1, 1, (1, *SHAPE)).astype(np.float32) for _ in range(16)]
    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calibration)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    paths["int8"].write_bytes(conv.convert())
    # int8 inside, float at the edges (QUANTIZE in, DEQUANTIZE out), as the export writes
    conv.inference_input_type = conv.inference_output_type = tf.float32
    paths["int8-float-io"] = out / "tiny_int8_float_io.tflite"
    paths["int8-float-io"].write_bytes(conv.convert())

    binary = {"kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip",
              "use_bias": False}  # fmt: skip
    inp = tf.keras.Input(SHAPE)
    x = lq.layers.QuantConv2D(8, 3, **binary)(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", padding="same", **binary)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    binary_model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(x))
    paths["binary"].write_bytes(lce.convert_keras_model(binary_model))
    return paths

"""export_model and ``--keras``: models that bitlite did not train (issue 17)."""

from __future__ import annotations

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline import cli, runs
from pipeline.export.exporter import export_model, main


def hand_built_mlp() -> tf.keras.Model:
    """A binary MLP as a user writes it: sign weights on real-valued pixels first."""
    tf.keras.utils.set_random_seed(3)
    x = inputs = tf.keras.Input((12, 12, 1))
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(64, kernel_quantizer="ste_sign", name="first")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Softmax()(x), name="user_mlp")
    # pre-activations on an 8-bit grid are multiples of the pixel step, so some are exactly
    # 0, where sign() flips on rounding; a bias off that grid makes every output stable
    bias = np.random.default_rng(3).uniform(-0.5, 0.5, 64) / 255
    model.get_layer("first").bias.assign(bias.astype(np.float32))
    return model


@pytest.mark.parametrize(
    ("normalization", "first_layer"),
    [((1 / 255, 0.0), "FULLY_CONNECTED"), ((1 / 127.5, -1.0), "LceBconv2d")],
)
def test_input_grid_decides_the_bit_planes_and_parity_holds(tmp_path, normalization, first_layer):
    """x / 255 is not the centered grid: the first layer must not be split into planes of
    (p - 127.5)/127.5 (that gave wrong outputs on 1 input in 4); on the centered grid it is."""
    model = hand_built_mlp()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 12, 12, 1)).astype(np.float32)
    x = pixels * normalization[0] + normalization[1]
    report = export_model(model, tmp_path, samples=x, labels=rng.integers(0, 10, 64),
                          normalization=normalization, interpreter="lce")  # fmt: skip
    assert report["parity_ok"] and report["argmax_agreement"] == 1.0
    assert report["relative_diff"] < 1e-4
    assert report["ops"].get(first_layer), report["ops"]
    first = next(p for p in report["layers"] if p["layer"] == "first")
    assert ("8-bit grid" in first["reason"]) == (first_layer == "FULLY_CONNECTED")
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["normalization"] == {"scale": normalization[0], "offset": normalization[1]}
    assert meta["input_dtype"] == "uint8" and (tmp_path / runs.TFLITE).stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keras", "{tmp}/nope.keras", "--out", "{tmp}/o"], "does not exist"),
        (["--keras", "{tmp}/junk.keras", "--out", "{tmp}/o"], "is not a Keras model"),
        (["--keras", "{tmp}", "--out", "{tmp}/o"], "not a SavedModel"),
        (["--keras", "{tmp}/junk.keras"], "--keras and --out go together"),
        (["--keras", "{tmp}/junk.keras", "--out", "{tmp}/o", "--input-scale", "0.1"],
         "together"),
        (["--keras", "{tmp}/unknown.keras", "--out", "{tmp}/o"], "give --input-shape"),
        (["--keras", "{tmp}/unknown.keras", "--out", "{tmp}/o", "--input-shape", "3,x"],
         "expected H,W,C"),
        (["--keras", "{tmp}/unknown.keras", "--out", "{tmp}/o", "--input-shape", "8,8,3",
          "--labels", "{tmp}/two.txt"], "2 names for 3 outputs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    x = tf.keras.Input((None, None, 3))
    unknown = tf.keras.Model(x, tf.keras.layers.GlobalAveragePooling2D()(x))
    unknown.save(tmp_path / "unknown.keras")
    with pytest.raises(SystemExit) as stop:
        cli.run(main, [a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_random_inputs_compare_the_logits_behind_the_softmax(tmp_path):
    """Without labels the softmax's input is compared: probabilities saturate (issue 17)."""
    report = export_model(hand_built_mlp(), tmp_path, interpreter="lce")
    assert report["parity_on"] == "logits" and report["parity"]["lce"]["compared"] == "logits"
    assert report["parity_ok"] and report["relative_diff"] < 1e-4
    md = (tmp_path / "export_report.md").read_text()
    assert "largest |logit (the final softmax's input)|" in md

"""The conversion child: a crash or failure becomes a clear error or a fallback, never a
dead session. The parent's side is tested with stand-in tracing and children (no
TensorFlow); the real tracing with a model no converter has seen."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.export import convert

# A stand-in child: reads the job like the real one, crashes (SIGSEGV) on the strategies
# listed in argv[2], writes a fake flatbuffer for the others.
FAKE_CHILD = r"""
import json, os, signal, sys
from pathlib import Path
job = json.loads(Path(sys.argv[1]).read_text())
crash_on = sys.argv[2].split(",")
for item in job["items"]:
    out = Path(item["out"]); out.mkdir(parents=True, exist_ok=True)
    for name, how, graph in item["tasks"]:
        # the parent traced this variant: the baselines and the fallback share the float one
        assert Path(graph).name == {"int8": "float", "tflite": "float"}.get(how, how), (graph, how)
        if how in crash_on:
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "raise":
            raise RuntimeError("unsupported op in this model")
        (out / f"{name}.tflite").write_bytes(b"fake" + how.encode())
        (out / f"{name}.done").touch()
"""


class Named:
    """A stand-in model: the fake tracing never looks inside."""

    def __init__(self, name: str) -> None:
        self.name = name


MODEL = Named("m")


@pytest.fixture
def fake_child(tmp_path, monkeypatch):
    script = tmp_path / "child.py"
    script.write_text(FAKE_CHILD)

    def use(crash_on: str) -> None:
        monkeypatch.setattr(
            convert, "child_command", lambda job: [sys.executable, str(script), str(job), crash_on]
        )
        monkeypatch.setattr(convert, "trace", lambda model, how, out, *_: (out, []))

    return use


def test_crash_falls_back_and_says_so(fake_child):
    fake_child("lce+rewrite")
    result = convert.convert(MODEL)
    assert result.strategy == "lce" and result.flatbuffer == b"fakelce"
    assert len(result.failures) == 1
    assert "lce+rewrite" in result.failures[0] and "SIGSEGV" in result.failures[0]


def test_every_strategy_crashing_is_one_clear_error(fake_child):
    fake_child("lce+rewrite,lce,tflite")
    with pytest.raises(convert.ConversionError, match="crashed \\(SIGSEGV\\).*nothing was written"):
        convert.convert(MODEL)


def test_python_error_in_the_child_names_its_last_line(fake_child):
    with pytest.raises(convert.ConversionError, match="unsupported op in this model"):
        fake_child("")
        convert.convert(MODEL, strategies=("raise",))


def test_a_failed_baseline_keeps_the_main_model(fake_child):
    fake_child("int8")
    result = convert.convert(MODEL, baselines=("float", "int8"))
    assert result.strategy == "lce+rewrite" and result.flatbuffer == b"fakelce+rewrite"
    assert result.baselines == {"float": b"fakefloat"}
    assert any("baseline int8" in f and "SIGSEGV" in f for f in result.failures)


def test_convert_many_names_the_model_that_failed(fake_child):
    fake_child("lce+rewrite")
    with pytest.raises(convert.ConversionError, match="^a: "):
        convert.convert_many([Named("a"), Named("b")])


def test_each_variant_is_traced_once(fake_child, monkeypatch):
    """float and int8 baselines convert the same float reference: one trace, not two."""
    fake_child("")
    calls = []

    def trace(model, how, out, *_):
        calls.append(out.name)
        return out, []

    monkeypatch.setattr(convert, "trace", trace)
    result = convert.convert(MODEL, baselines=("float", "int8"))
    assert sorted(calls) == ["float", "lce+rewrite"]
    assert result.baselines == {"float": b"fakefloat", "int8": b"fakeint8"}


def test_a_model_that_fails_to_trace_falls_back(fake_child, monkeypatch):
    fake_child("")

    def trace(model, how, out, *_):
        if how == "lce+rewrite":
            raise TypeError("a layer the rewrite cannot copy\nQuantFoo(x)")
        return out, []

    monkeypatch.setattr(convert, "trace", trace)
    result = convert.convert(MODEL)
    assert result.strategy == "lce" and result.flatbuffer == b"fakelce"
    assert result.failures == ["lce+rewrite: tracing the model failed: TypeError: QuantFoo(x)"]


def test_a_model_with_the_users_own_quantizer_converts_to_binary_ops():
    """A ``tf.custom_gradient`` sign cannot even be saved as .keras (not serializable):
    traced in the parent, it reaches the child as a graph and converts to LceBconv2d."""
    import larq as lq
    import tensorflow as tf
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
    from pipeline.tflite.reader import read_model

    @tf.custom_gradient
    def my_sign(x):
        return tf.where(x >= 0, 1.0, -1.0), lambda dy: dy * tf.cast(tf.abs(x) <= 1, dy.dtype)

    tf.keras.utils.set_random_seed(1)
    x = tf.keras.Input((8, 8, 3))
    h = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
    h = lq.layers.QuantConv2D(16, 3, input_quantizer=my_sign, kernel_quantizer=my_sign,
                              use_bias=False, pad_values=1.0, padding="same")(h)  # fmt: skip
    model = tf.keras.Model(x, tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(h)))
    result = convert.convert(model, strategies=("lce",))
    assert read_model(result.flatbuffer).op_counts().get("LceBconv2d") == 1
    data = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    got = Interpreter(result.flatbuffer).predict(data)
    want = model(data, training=False).numpy()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

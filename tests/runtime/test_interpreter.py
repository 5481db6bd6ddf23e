"""bitlite_runtime.Interpreter (bitlite's delegate in each installed host runtime) vs
LCE's own x86 interpreter on a matrix of tiny models.

Integer and bitpacked results must match exactly, float ones within 1e-5 relative; in
fact every float output matches bit for bit, and the tests assert that.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import bitlite_runtime
import numpy as np
import pytest
from bitlite_runtime import Interpreter, RuntimeModelError
from flatbuffers import flexbuffers
from runtime_models import compare, host_params, kernel_params, run_ours, single_input_model

HOSTS = host_params()


@pytest.mark.parametrize("kernel", kernel_params())
@pytest.mark.parametrize("host", HOSTS)
def test_main_matrix_matches_lce(main_case, host, kernel):
    """Every option, Cin in {1, 31, 32, 33, 64, 200}, float and bitpacked outputs, on
    each host runtime with each kernel forced (through the delegate's option)."""
    compare(main_case, run_ours(main_case, num_threads=2, host=host, kernel=kernel),
            exact_float=True)


@pytest.mark.parametrize("host", HOSTS)
def test_kernel_from_environment(main_case, host, monkeypatch):
    """BITLITE_KERNEL picks the kernel when the delegate has no kernel option."""
    monkeypatch.setenv("BITLITE_KERNEL", "reference")
    compare(main_case, run_ours(main_case, host=host), exact_float=True)


@pytest.mark.parametrize("kernel", ("auto", "reference"))
@pytest.mark.parametrize("host", HOSTS)
def test_grouped_convolutions_match_lce_reference(groups_case, host, kernel):
    compare(groups_case, run_ours(groups_case, host=host, kernel=kernel), exact_float=True)


@pytest.mark.parametrize("kernel", ("auto", "reference"))
@pytest.mark.parametrize("host", HOSTS)
def test_int8_model_matches_lce(int8_case, host, kernel):
    interpreter = Interpreter(int8_case.model, host=host, kernel=kernel)
    assert interpreter.input_details[0]["dtype"] == np.int8
    tfl = interpreter._interpreter
    dtypes = {t["index"]: t["dtype"] for t in tfl.get_tensor_details()}
    ops = tfl._get_ops_details()
    bconv_out = [dtypes[o["outputs"][0]] for o in ops if o["op_name"] == "LceBconv2d"]
    quantize_in = [dtypes[o["inputs"][0]] for o in ops if o["op_name"] == "LceQuantize"]
    assert np.int8 in bconv_out and np.int8 in quantize_in, (bconv_out, quantize_in)
    got = run_ours(int8_case, host=host, kernel=kernel)
    assert all(g.dtype == np.int8 for g in got)
    compare(int8_case, got, exact_float=True)


def test_predict_refuses_multi_input_model(main_case):
    with pytest.raises(RuntimeModelError, match="single-input"):
        Interpreter(main_case.model).predict(main_case.inputs[0])


def test_predict_on_single_input_model(runtime_library):
    x = np.random.default_rng(0).normal(size=(3, 9, 9, 40)).astype(np.float32)
    model = single_input_model()
    interpreter = Interpreter(model, num_threads=2)
    assert interpreter.input_details[0]["shape"][0] == 1  # predict loops over the batch
    got = interpreter.predict(x)
    assert got.shape == (3, 1, 1, 10)
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    np.testing.assert_array_equal(got, LceInterpreter(model).predict(x))
    with pytest.raises(RuntimeModelError, match="does not match"):
        Interpreter(model).predict(x[:, :8])


def test_exit_with_an_open_interpreter_prints_nothing(runtime_library, tmp_path):
    """A script that leaves an Interpreter in a global after importing TensorFlow exits
    silently: the host's delegate is freed at exit, before module teardown (LiteRT's
    Delegate.__del__ printed a traceback from there)."""
    model = tmp_path / "model.tflite"
    model.write_bytes(single_input_model())
    script = (f"import sys; sys.path.insert(0, {str(Path(bitlite_runtime.__file__).parents[1])!r})\n"
              "import tensorflow\nimport bitlite_runtime\n"
              f"interpreter = bitlite_runtime.Interpreter({str(model)!r})\nprint('ran')\n")
    # As a user's script starts: without the legacy-Keras switch our pipeline sets (with it,
    # TensorFlow's import order happens to hide the fault).
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_closed_interpreter_refuses_invoke(runtime_library):
    interpreter = Interpreter(single_input_model())
    interpreter.close()
    with pytest.raises(RuntimeModelError, match="closed"):
        interpreter.predict(np.zeros((1, 9, 9, 40), np.float32))


def test_details_are_copies_invoke_is_unaffected(runtime_library):
    """invoke reads the details cached at construction: a caller editing what
    input_details returned changes neither the next answer nor the cache."""
    x = np.random.default_rng(1).normal(size=(1, 9, 9, 40)).astype(np.float32)
    interpreter = Interpreter(single_input_model())
    before = interpreter.invoke(x)[0]
    interpreter.input_details[0]["index"] = -1
    interpreter.output_details[0]["index"] = -1
    assert interpreter.input_details[0]["index"] >= 0
    np.testing.assert_array_equal(interpreter.invoke(x)[0], before)
    with pytest.raises(RuntimeModelError, match="1 inputs, got 2"):
        interpreter.invoke([x, x])


def test_kernel_name_reports_selection(monkeypatch):
    monkeypatch.delenv("BITLITE_KERNEL", raising=False)
    assert bitlite_runtime.kernel_name() in {"avx512", "avx2", "neon", "generic"}
    monkeypatch.setenv("BITLITE_KERNEL", "reference")
    assert bitlite_runtime.kernel_name() == "reference"


def test_unknown_kernel_fails_at_prepare(main_case, monkeypatch):
    monkeypatch.setenv("BITLITE_KERNEL", "quantum")
    with pytest.raises(RuntimeModelError, match="unknown BITLITE_KERNEL"):
        Interpreter(main_case.model)


# ------------------------------------------------------------------ options


def _options(**overrides) -> bytes:
    values = dict(channels_in=64, dilation_height_factor=1, dilation_width_factor=1,
                  fused_activation_function=0, pad_values=1, padding=0, stride_height=1,
                  stride_width=1)
    values.update(overrides)
    return bytes(flexbuffers.Dumps({k: v for k, v in values.items() if v is not None}))


def test_valid_options_accepted():
    assert bitlite_runtime.check_options("LceBconv2d", _options()) == ""
    pool = bytes(flexbuffers.Dumps(dict(filter_height=2, filter_width=2, padding=1,
                                        stride_height=2, stride_width=2)))
    assert bitlite_runtime.check_options("LceBMaxPool2d", pool) == ""


@pytest.mark.parametrize(("options", "message"), [
    (_options(pad_values=None), "'pad_values' is missing"),
    (_options(padding=2), "padding must be SAME"),
    (_options(pad_values=3), "pad_values must be 0 or 1"),
    (_options(fused_activation_function=4), "activation function 4 is not supported"),
    (_options(stride_width=0), "strides must be >= 1"),
    (_options(dilation_height_factor=-1), "dilation factors"),
    (_options(channels_in=0), "channels_in out of range"),
    (_options(stride_height=2**40), "not a 32-bit integer"),
    (_options(stride_height=1.5), "not a 32-bit integer"),
    (_options(stride_height="2"), "not a 32-bit integer"),
    (b"", "buffer too short"),
    (_options()[:-5], "malformed custom options"),
    (bytes(flexbuffers.Dumps([1, 2, 3])), "root is not a map"),
])
def test_bad_options_give_clear_errors(options, message):
    assert message in bitlite_runtime.check_options("LceBconv2d", options)


def _patch_first_bconv_options(model: bytes, **overrides) -> bytes:
    """Rewrite the first LceBconv2d's options in place (same keys, same byte widths)."""
    start = model.index(b"channels_in\x00")  # the FlexBuffer begins with its first key
    (length,) = struct.unpack_from("<I", model, start - 4)  # flatbuffer [ubyte] length
    old = model[start : start + length]
    values = flexbuffers.Loads(old)
    values.update(overrides)
    new = bytes(flexbuffers.Dumps(values))
    assert len(new) == len(old)
    return model[:start] + new + model[start + length :]


@pytest.mark.parametrize("host", HOSTS)
def test_unsupported_option_in_model_fails_at_construction(main_case, host):
    model = _patch_first_bconv_options(main_case.model, fused_activation_function=4)
    with pytest.raises(RuntimeModelError, match="activation function 4 is not supported"):
        Interpreter(model, host=host)


def test_malformed_options_in_model_fail_at_prepare(main_case):
    start = main_case.model.index(b"channels_in\x00")
    (length,) = struct.unpack_from("<I", main_case.model, start - 4)
    end = start + length
    model = main_case.model[: end - 1] + b"\x03" + main_case.model[end:]  # root width 3
    with pytest.raises(RuntimeModelError, match="malformed custom options"):
        Interpreter(model)


def test_zero_padding_with_odd_channels_and_activation_is_refused(main_case):
    # SAME zero padding with a fused activation (or int8/bitpacked output) and an odd
    # channel count has no exact integer form; LCE's converter never writes one, LCE's
    # runtime refuses it, and so do we, at prepare.
    model = main_case.model
    start = model.index(b"channels_in\x00")
    while True:
        (length,) = struct.unpack_from("<I", model, start - 4)
        values = flexbuffers.Loads(model[start : start + length])
        if values["channels_in"] == 31:
            patched = {**values, "padding": 0, "pad_values": 0, "fused_activation_function": 1}
            new = bytes(flexbuffers.Dumps(patched))
            if len(new) == length:
                model = model[:start] + new + model[start + length :]
                break
        start = model.index(b"channels_in\x00", start + 1)
    with pytest.raises(RuntimeModelError, match="even number of input channels"):
        Interpreter(model)

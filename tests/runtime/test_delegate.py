"""bitlite's delegate as users meet it: in interpreters they build themselves, beside
other interpreters, across a batch resize, with a model it cannot run, with bad options,
and on models it has nothing to do for."""

from __future__ import annotations

from pathlib import Path

import bitlite_runtime
import numpy as np
import pytest
from bitlite_runtime import Interpreter, RuntimeModelError, hosts
from packed_models import builtin_model
from runtime_models import host_params, single_input_model

HOSTS = host_params()


def _lce_predict(model: bytes, x: np.ndarray) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    return LceInterpreter(model).predict(x)


def _own_interpreter(host: str, model: bytes, **delegate_options):
    """The host runtime's interpreter with bitlite's delegate, built as a user would."""
    delegate = bitlite_runtime.delegate(host=host, **delegate_options)
    interpreter = hosts.resolve(host).interpreter_class(
        model_content=model, experimental_delegates=[delegate])
    return interpreter, delegate


@pytest.fixture(scope="module")
def single_input(runtime_library) -> tuple[bytes, np.ndarray]:
    x = np.random.default_rng(7).normal(size=(3, 9, 9, 40)).astype(np.float32)
    x.flat[::5] = 0.0
    return single_input_model(), x


@pytest.mark.parametrize("host", HOSTS)
def test_builtin_only_model_runs_untouched(host, runtime_library):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 12)).astype(np.float32)
    x = rng.normal(size=(1, 12)).astype(np.float32)
    interpreter = Interpreter(builtin_model(w), host=host)
    seen = bitlite_runtime.probe(interpreter.delegate)
    assert seen["prepared"] and seen["claimed"] == [] and seen["kernels"] == []
    ops = [op["op_name"] for op in interpreter._interpreter._get_ops_details()]
    assert ops[0] == "FULLY_CONNECTED", ops
    np.testing.assert_allclose(interpreter.invoke(x)[0], x @ w.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("host", HOSTS)
def test_two_interpreters_keep_their_thread_counts(host, single_input):
    model, x = single_input
    one, three = (Interpreter(model, num_threads=n, host=host) for n in (1, 3))
    want = _lce_predict(model, x)
    for _ in range(2):  # interleaved: neither delegate's state leaks into the other
        np.testing.assert_array_equal(one.predict(x), want)
        np.testing.assert_array_equal(three.predict(x), want)
    seen = [bitlite_runtime.probe(it.delegate) for it in (one, three)]
    assert [s["threads_seen"] for s in seen] == [1, 3]
    assert [s["context"]["recommended_num_threads"] for s in seen] == [1, 3]


@pytest.mark.parametrize("host", HOSTS)
def test_batch_resize_after_delegation(host, single_input):
    model, x = single_input
    interpreter, delegate = _own_interpreter(host, model, num_threads=2)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    want = _lce_predict(model, x)
    for batch in (3, 1, 2):  # grow, shrink, grow: every prepare re-plans our kernels
        interpreter.resize_tensor_input(index, [batch, 9, 9, 40])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x[:batch])
        interpreter.invoke()
        np.testing.assert_array_equal(interpreter.get_tensor(out), want[:batch])
    assert len(bitlite_runtime.probe(delegate)["kernels"]) == 4


def _bad_activation(model: bytes) -> bytes:
    from test_interpreter import _patch_first_bconv_options

    return _patch_first_bconv_options(model, fused_activation_function=4)


@pytest.mark.parametrize("host", HOSTS)
def test_unsupported_option_fails_when_the_graph_is_prepared(host, main_case):
    """In an interpreter of the user's own, the error comes from allocate_tensors (the
    first prepare), with bitlite's message; bitlite's Interpreter does that in its
    constructor (test_interpreter)."""
    interpreter, _ = _own_interpreter(host, _bad_activation(main_case.model))
    with pytest.raises((RuntimeError, ValueError), match="activation function 4 is not supported"):
        interpreter.allocate_tensors()


@pytest.mark.parametrize("host", HOSTS)
def test_kernel_option_beats_the_environment(host, single_input, monkeypatch):
    model, x = single_input
    monkeypatch.setenv("BITLITE_KERNEL", "quantum")  # would fail at prepare if read
    got = Interpreter(model, host=host, kernel="reference").predict(x)
    np.testing.assert_array_equal(got, _lce_predict(model, x))


def test_bad_delegate_options_are_refused_at_creation(runtime_library):
    with pytest.raises(RuntimeModelError, match="num_threads must be an integer"):
        bitlite_runtime.delegate(num_threads=-1)
    with pytest.raises(RuntimeModelError, match="kernel option: unknown"):
        bitlite_runtime.delegate(kernel="quantum")
    missing = [k for k in bitlite_runtime.KERNELS if k not in bitlite_runtime.available_kernels()]
    if missing:
        with pytest.raises(RuntimeModelError, match="kernel option"):
            bitlite_runtime.delegate(kernel=missing[0])
    runtime = hosts.resolve()
    with pytest.raises(ValueError, match="unknown delegate option 'threads'"):
        runtime.load_delegate(str(bitlite_runtime.library_path()), {"threads": "2"})


def test_backend_follows_argument_and_environment(monkeypatch):
    installed = hosts.installed()
    assert installed, "no host runtime installed"
    monkeypatch.delenv(hosts.HOST_ENV, raising=False)
    assert bitlite_runtime.backend() == installed[0]  # preference order
    for name in installed:
        assert bitlite_runtime.backend(name) == name
        monkeypatch.setenv(hosts.HOST_ENV, name)
        assert bitlite_runtime.backend() == name
    monkeypatch.setenv(hosts.HOST_ENV, "onnx")
    with pytest.raises(bitlite_runtime.NoHostError, match="unknown host runtime 'onnx'"):
        bitlite_runtime.backend()


@pytest.mark.parametrize("host", HOSTS)
def test_interpreter_reports_its_host(host, single_input):
    model, _ = single_input
    assert Interpreter(model, host=host).host == host


# Run with TensorFlow and larq unimportable, as on a Raspberry Pi with only numpy and
# LiteRT: bitlite_runtime must load the model and run it there.
_RUN_MODEL = """
sys.path.insert(0, sys.argv[1])
import numpy as np, bitlite_runtime
it = bitlite_runtime.Interpreter(open(sys.argv[2], "rb").read(), host="litert")
np.save(sys.argv[3], it.predict(np.load(sys.argv[4])))
print(bitlite_runtime.backend("litert"))
"""


def test_runs_without_tensorflow_or_larq(tmp_path, without_tensorflow):
    pytest.importorskip("ai_edge_litert")
    model, x = single_input_model(), np.random.default_rng(0).normal(size=(1, 9, 9, 40))
    (tmp_path / "m.tflite").write_bytes(model)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    package = Path(bitlite_runtime.__file__).resolve().parents[1]
    args = [str(package), str(tmp_path / "m.tflite"), str(tmp_path / "y.npy"),
            str(tmp_path / "x.npy")]  # fmt: skip
    out = without_tensorflow(_RUN_MODEL, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "litert"
    want = bitlite_runtime.Interpreter(model, host="litert").predict(x.astype(np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


_PROFILED = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from bitlite_runtime import Interpreter
it = Interpreter(open(sys.argv[2], "rb").read(), host="litert")
x = np.random.default_rng(0).normal(size=it.input_details[0]["shape"]).astype(np.float32)
for _ in range(3):
    it.invoke(x)
"""


def test_profile_records_every_invoke_of_every_op(tmp_path, runtime_library):
    """BITLITE_PROFILE=<file>: each kernel appends one "node op start end" line per
    invoke when it is freed (benchmarks/op_profile.py reads them)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ai_edge_litert")
    (tmp_path / "m.tflite").write_bytes(single_input_model())
    out = tmp_path / "profile.txt"
    package = Path(bitlite_runtime.__file__).resolve().parents[1]
    env = dict(os.environ, BITLITE_PROFILE=str(out), BITLITE_LIBRARY=str(runtime_library))
    run = subprocess.run([sys.executable, "-c", _PROFILED, str(package), str(tmp_path / "m.tflite")],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split() for line in out.read_text().splitlines()]
    ops = {(node, op) for node, op, _, _ in lines}
    assert ops and all(op.startswith("Lce") for _, op in ops)
    assert len(lines) == 3 * len(ops)  # three invokes of each
    assert all(0 < int(start) <= int(end) for _, _, start, end in lines)

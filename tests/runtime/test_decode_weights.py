"""BitliteDecodeWeights in our runtime: k-bit codes packed by pipeline.tflite.rewrite
decode to ``scales[c] * levels[code]`` bit for bit, once per prepare; every malformed
tensor or option is a RuntimeModelError at load time, never a crash or wrong numbers."""

from __future__ import annotations

import bitlite_runtime
import numpy as np
import pytest
from bitlite_runtime import Interpreter, RuntimeModelError
from packed_models import PackedSpec, packed_model, random_spec
from runtime_models import host_params

HOSTS = host_params()


def _decoded(model: bytes, features: int) -> list[np.ndarray]:
    x = np.arange(features, dtype=np.float32)[None] / features
    return Interpreter(model).invoke(x)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("shape,axis", [((7, 13), 0), ((3, 3, 5, 11), 3), ((1, 29), 1)])
def test_codes_decode_bit_for_bit(runtime_library, bits, shape, axis):
    """Odd sizes: codes straddle byte boundaries (k = 3, 5, 6, 7) and the stream ends
    mid-byte; every level is used; a 4-D depthwise-style axis and a last axis too."""
    rng = np.random.default_rng(bits * 100 + len(shape))
    spec = random_spec(rng, bits, shape, axis)
    out = _decoded(packed_model(spec), shape[-1])
    np.testing.assert_array_equal(out[0], spec.expected())
    assert out[0].tobytes() == spec.expected().tobytes()  # -0.0 and all: bit for bit
    if len(shape) == 2:  # and the consumer sees those weights
        x = np.arange(shape[-1], dtype=np.float32) / shape[-1]
        np.testing.assert_allclose(out[1][0], spec.expected() @ x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("host", HOSTS)
def test_weights_decode_once_and_persist_across_invokes(runtime_library, host):
    spec = random_spec(np.random.default_rng(1), 2, (16, 40), levels=3)
    it = Interpreter(packed_model(spec), host=host)
    before = bitlite_runtime.decode_count()
    outs = [it.invoke(np.full((1, 40), v, np.float32)) for v in (1.0, -2.0, 0.5)]
    assert bitlite_runtime.decode_count() - before == 1
    for v, (w, y) in zip((1.0, -2.0, 0.5), outs, strict=True):
        np.testing.assert_array_equal(w, spec.expected())  # not overwritten by the arena
        np.testing.assert_allclose(y[0], spec.expected().sum(1) * v, rtol=1e-5, atol=1e-5)


def _corrupt(**changes) -> PackedSpec:
    spec = random_spec(np.random.default_rng(2), 2, (4, 9), levels=3)
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


CORRUPT = {
    "code >= levels": (dict(codes=np.full((4, 9), 3)), "is not below the 3 levels"),
    "short buffer": (dict(code_bytes=bytes(8)), "codes hold 8 bytes; 36 weights of 2 bits need 9"),
    "long buffer": (dict(code_bytes=bytes(10)), "codes hold 10 bytes"),
    "too many levels": (dict(levels=np.zeros(5, np.float32)), "must hold 1..4 entries"),
    "empty level table": (dict(levels=np.zeros(0, np.float32)), "level table must be a constant"),
    "scales per channel": (dict(scales=np.ones(9, np.float32)), "scales hold 9 entries"),
    "bits 0": (dict(options={"bits": 0}), "bits must be in 1..8"),
    "bits 9": (dict(options={"bits": 9}), "bits must be in 1..8"),
    "axis outside rank": (dict(options={"axis": 2}), "axis is outside"),
    "missing option": (dict(options={"axis": None}), "'axis' is missing"),
    "string option": (dict(options={"bits": "two"}), "'bits' is not a 32-bit integer"),
    "codes not constant": (dict(constant_codes=False), "codes must be a constant tensor"),
}


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_malformed_packed_tensor_is_a_clear_error(runtime_library, case, host):
    changes, message = CORRUPT[case]
    model = packed_model(_corrupt(**changes))
    with pytest.raises(RuntimeModelError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Interpreter(model, host=host)


def test_options_check_matches_prepare(runtime_library):
    from flatbuffers import flexbuffers

    good = bytes(flexbuffers.Dumps({"axis": 0, "bits": 4}))
    assert bitlite_runtime.check_options("BitliteDecodeWeights", good) == ""
    bad = bytes(flexbuffers.Dumps({"axis": 0, "bits": 12}))
    assert "bits must be in 1..8" in bitlite_runtime.check_options("BitliteDecodeWeights", bad)
    for cut in range(1, len(good)):  # truncations: a message, never a crash
        assert bitlite_runtime.check_options("BitliteDecodeWeights", good[cut:]) != ""

"""The delegate on hostile models: every tensor of every op is validated at prepare, so a
model that would make a kernel read or write out of bounds (or overflow) fails at
construction with bitlite's message — never at invoke, never as a sanitizer report
(run_sanitized.sh runs this file with the ASan/UBSan build)."""

from __future__ import annotations

import bitlite_runtime
import hostile_models as hm
import numpy as np
import pytest
from bitlite_runtime import Interpreter, RuntimeModelError, hosts
from runtime_models import host_params

HOSTS = host_params()


@pytest.mark.parametrize("op", sorted(hm.SPARSE_MODELS))
@pytest.mark.parametrize("host", HOSTS)
def test_sparse_constant_input_is_refused(op, host, runtime_library):
    """The issue's reproducer (LceQuantize of a sparse (1, 4096) float constant backed
    by 4 bytes: TFLite skips its size check for sparse constants) and the same pattern
    for the other ops' inputs."""
    with pytest.raises(RuntimeModelError, match=rf"{op}: input is a sparse tensor"):
        Interpreter(hm.SPARSE_MODELS[op](), host=host)


def test_sparse_constant_filter_is_refused(runtime_library):
    with pytest.raises(RuntimeModelError, match="LceBconv2d: filter is a sparse tensor"):
        Interpreter(hm.sparse_bconv(tensor=1))


def _pack_bits(x: np.ndarray) -> np.ndarray:
    """LceQuantize's packing of the last axis (bit 1 = negative), in numpy."""
    neg = (x < 0).reshape(x.shape[0], -1, 32).astype(np.uint64)
    words = (neg << np.arange(32, dtype=np.uint64)).sum(axis=-1)
    return words.astype(np.uint32).view(np.int32)


def test_dense_controls_run(runtime_library):
    """The same models without the sparsity run and compute the right values: the
    refusals above are about sparsity, not about the hand-built files."""
    x = np.where(np.arange(4096) % 3 == 0, -1.0, 1.0).astype(np.float32).reshape(1, 4096)
    (got,) = Interpreter(hm.sparse_quantize(sparse=False)).invoke([])
    np.testing.assert_array_equal(got, _pack_bits(x))
    (unpacked,) = Interpreter(hm.sparse_dequantize(sparse=False)).invoke([])
    bit = (0x5 >> (np.arange(4096) % 32)) & 1
    np.testing.assert_array_equal(unpacked[0], np.where(bit == 1, -1.0, 1.0))
    for model in (hm.sparse_bconv(sparse=False), hm.sparse_maxpool(sparse=False)):
        (out,) = Interpreter(model).invoke([])
        assert out.shape in {(1, 9, 9, 8), (1, 4, 4, 2)}


@pytest.mark.parametrize("host", HOSTS)
def test_sparsity_is_read_where_the_host_keeps_it(host, runtime_library):
    """TfLiteTensor::sparsity (runtime/src/tflite_abi.h) probed through each host: set
    for the sparse constant, unset for every other tensor."""
    model = hm.sparse_bconv(tensor=1)
    delegate = bitlite_runtime.delegate(host=host)
    with pytest.raises((RuntimeError, ValueError)):
        interpreter = hosts.resolve(host).interpreter_class(
            model_content=model, experimental_delegates=[delegate])
        interpreter.allocate_tensors()
    seen = bitlite_runtime.probe(delegate)
    sparse = {int(i) for i, t in seen["tensors"].items() if t["sparse"]}
    assert sparse == {1}, seen["tensors"]  # in1: the filter


@pytest.mark.parametrize("zero_point", [2**31 - 1, 2**31 - 2, -(2**31), 128, -129])
def test_dequantize_zero_point_outside_int8_is_refused(zero_point, runtime_library):
    """zp ± round(1/scale) overflowed int32 for zero points near INT32_MAX (UBSan)."""
    with pytest.raises(RuntimeModelError, match="zero point .* outside the int8 range"):
        Interpreter(hm.dequantize_int8(zero_point))


@pytest.mark.parametrize(("zero_point", "scale", "plus", "minus"),
                         [(127, 0.5, 127, 125), (-128, 0.25, -124, -128), (3, 1e-9, 127, -128)])
def test_dequantize_int8_at_the_edges(zero_point, scale, plus, minus, runtime_library):
    """Valid extremes run, saturating as LCE does: +1 -> zp + round(1/scale)."""
    interpreter = Interpreter(hm.dequantize_int8(zero_point, scale))
    (got,) = interpreter.invoke(np.array([[0b101]], np.int32))
    want = np.full(32, plus, np.int8)
    want[[0, 2]] = minus  # bits set: -1
    np.testing.assert_array_equal(got[0], want)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bconv_int8_output_scale_out_of_range_is_refused(scale, runtime_library):
    with pytest.raises(RuntimeModelError, match="positive, finite quantization scale"):
        Interpreter(hm.bconv_int8_output(scale))


def test_bconv_int8_output_zero_point_out_of_range_is_refused(runtime_library):
    with pytest.raises(RuntimeModelError, match="zero point 300 outside the int8 range"):
        Interpreter(hm.bconv_int8_output(0.1, 300))


def test_output_into_own_input_is_refused(runtime_library):
    # TFLite's own partitioning already refuses to hand a delegate such a node (the op
    # then stays unresolved); our prepare refuses it too (the op-level fuzzer reaches it).
    with pytest.raises(RuntimeModelError,
                       match="output is also one of the op's inputs|LceBconv2d.* failed to prepare"):
        Interpreter(hm.bconv_into_own_input())


def test_output_into_constant_is_refused(runtime_library):
    with pytest.raises(RuntimeModelError, match="output is a constant tensor"):
        Interpreter(hm.quantize_into_constant())


def test_missing_outputs_are_refused(runtime_library):
    model = hm.op_model("LceQuantize", [hm.T((1, 64), model_input=True)], [])
    with pytest.raises(RuntimeModelError, match="expects one input and one output"):
        Interpreter(model)


def test_bool_bytes_other_than_0_and_1_are_true(runtime_library):
    """A bool tensor may hold any byte; LceQuantize reads it as a byte (reading 253 as a
    C++ bool was undefined behaviour, found by the op-level fuzzer under UBSan)."""
    raw = bytes([0, 1, 253, 2, 0, 128, 255, 0] * 8)
    model = hm.op_model("LceQuantize", [hm.T((1, 64), np.bool_, data=raw)],
                        [hm.T((1, 2), np.int32)])
    (got,) = Interpreter(model).invoke([])
    negative = np.frombuffer(raw, np.uint8) == 0  # false packs as bit 1 (-1)
    np.testing.assert_array_equal(got, _pack_bits(np.where(negative, -1.0, 1.0)[None]))


@pytest.mark.parametrize("op", ["LceQuantize", "LceDequantize"])
def test_empty_tensor_with_a_huge_last_dimension_runs(op, runtime_library):
    """No rows of 2^31 - 1 channels: the word count overflowed an int (UBSan under the
    op-level fuzzer; run_sanitized.sh runs this with the sanitized delegate)."""
    channels, words = 2**31 - 1, 2**26
    if op == "LceQuantize":
        model = hm.op_model(op, [hm.T((0, channels), model_input=True)],
                            [hm.T((0, words), np.int32)])
        x = np.zeros((0, channels), np.float32)
    else:
        model = hm.op_model(op, [hm.T((0, words), np.int32, model_input=True)],
                            [hm.T((0, channels))])
        x = np.zeros((0, words), np.int32)
    (got,) = Interpreter(model).invoke(x)
    assert got.size == 0


def _two_quantizes(shared: str) -> bytes:
    """Two LceQuantize ops, x0 (1, 64) -> y0 and x1 (1, 128) -> y1, then LceDequantize
    of y0 -> z. shared='output': both quantizes write y0 (the second's prepare resizes
    it to (1, 4)); shared='none': the control."""
    tensors = [hm.T((1, 64), model_input=True), hm.T((1, 128), model_input=True),
               hm.T((1, 2), np.int32), hm.T((1, 4), np.int32), hm.T((1, 64))]
    second = 2 if shared == "output" else 3
    return hm.graph_model(tensors, [hm.Op("LceQuantize", [0], [2]),
                                    hm.Op("LceQuantize", [1], [second]),
                                    hm.Op("LceDequantize", [2], [4])], outputs=[4, 3])


@pytest.mark.parametrize("host", HOSTS)
def test_tensor_with_two_writers_is_refused_at_construction(host, runtime_library):
    """Found by the model-level fuzzer: every node is prepared before any runs, so the
    later writer's prepare left a shape the other ops' invoke did not match (they failed
    at invoke). Now each op that reads or writes such a tensor fails at prepare."""
    with pytest.raises(RuntimeModelError,
                       match=r"LceQuantize: output tensor 2 is written by 2 ops"):
        Interpreter(_two_quantizes("output"), host=host)


def test_tensor_with_two_writers_control_runs(runtime_library):
    x0 = np.where(np.arange(64) % 5 == 0, -1.0, 1.0).astype(np.float32)[None]
    x1 = np.ones((1, 128), np.float32)
    z, y1 = Interpreter(_two_quantizes("none")).invoke([x0, x1])
    np.testing.assert_array_equal(z, x0)  # quantize then dequantize: the signs
    np.testing.assert_array_equal(y1, np.zeros((1, 4), np.int32))


@pytest.mark.parametrize("host", HOSTS)
def test_op_whose_output_nobody_reads_runs(host, runtime_library):
    """Found by the model-level fuzzer: an op whose output no node reads and no model
    output names gets no memory from the host (its delegate kernel does not list it),
    and invoke failed. Nothing can observe such an output: the op is skipped."""
    tensors = [hm.T((1, 64), model_input=True), hm.T((1, 2), np.int32),
               hm.T((1, 2), np.int32)]
    model = hm.graph_model(tensors, [hm.Op("LceQuantize", [0], [1]),
                                     hm.Op("LceQuantize", [0], [2])], outputs=[2])
    x = np.where(np.arange(64) % 3 == 0, -1.0, 1.0).astype(np.float32)[None]
    (y,) = Interpreter(model, host=host).invoke(x)
    np.testing.assert_array_equal(y, _pack_bits(x))

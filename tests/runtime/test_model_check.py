"""bitlite_runtime.model_check: the structural faults that made LiteRT crash under the
model-level fuzzer (each reproducer rebuilt here, small), the index and size faults
around them, and a checker that never raises on any bytes."""

from __future__ import annotations

import random

import hostile_models as hm
import numpy as np
import pytest
from bitlite_runtime import Interpreter, RuntimeModelError, check_model, hosts
from bitlite_runtime.model_check import MALFORMED

from pipeline.tflite.reader import schema
from pipeline.tflite.rewrite import load, pack


def _quantized_chain(first: str, first_inputs: list[int]) -> bytes:
    """`first` (DEQUANTIZE: int8 -> float, QUANTIZE: float -> int8) -> LceQuantize ->
    LceDequantize, as in the LCE int8 seed whose mutants crashed XNNPACK's VisitNode."""
    int8, f32 = hm.T((1, 64), np.int8, quant=(0.02, 0)), hm.T((1, 64))
    x, y = (int8, f32) if first == "DEQUANTIZE" else (f32, int8)
    x.model_input = True
    tensors = [x, y, hm.T((1, 2), np.int32), hm.T((1, 64))]
    return hm.graph_model(tensors, [hm.Op(first, first_inputs, [1]),
                                    hm.Op("LceQuantize", [1], [2]),
                                    hm.Op("LceDequantize", [2], [3])], outputs=[3])


def _edit(model: bytes, change) -> bytes:
    m = load(model)
    change(m)
    return pack(m)


def test_a_valid_model_passes(runtime_library):
    model = _quantized_chain("DEQUANTIZE", [0])
    assert check_model(model) == ""
    x = np.arange(64, dtype=np.int8)[None]
    (y,) = Interpreter(model).invoke(x)
    np.testing.assert_array_equal(y, np.ones((1, 64), np.float32))  # x >= 0: sign +1


@pytest.mark.parametrize("op", ["QUANTIZE", "DEQUANTIZE"])
def test_builtin_op_with_an_absent_input_is_refused(op):
    """crash-1-195839 / 409098 / 750036: XNNPACK's VisitNode read the absent input
    through a null pointer (a SEGV in the host, at allocate_tensors)."""
    code = getattr(schema().BuiltinOperator, op)
    assert check_model(_quantized_chain(op, [-1])) == (
        f"{MALFORMED}subgraph 0 operator 0 (builtin op {code}): input 0 is absent (-1) but "
        "required")


def test_reduce_window_with_an_absent_input_is_refused():
    """crash-1-219438: LceBconv2d's opcode turned REDUCE_WINDOW by a byte flip, keeping
    its inputs (the absent post-activation multiplier): its Prepare read through null."""
    tensors = [hm.T((1, 9, 9, 2), np.int32, model_input=True),
               hm.T((8, 3, 3, 2), np.int32, data=bytes(8 * 18 * 4)),
               hm.T((8,), data=bytes(32)), hm.T((8,), data=bytes(32)), hm.T((1, 9, 9, 8))]
    model = hm.graph_model(tensors, [hm.Op("REDUCE_WINDOW", [0, 1, 2, 3, -1], [4])])
    assert check_model(model).endswith(
        f"(builtin op {schema().BuiltinOperator.REDUCE_WINDOW}): input 4 is absent (-1) but required")


def test_optional_inputs_stay_allowed():
    """A bias may be absent: CONV_2D, FULLY_CONNECTED... (the schema's optional inputs)."""
    tensors = [hm.T((1, 8), model_input=True), hm.T((4, 8), data=bytes(128)), hm.T((1, 4))]
    assert check_model(hm.graph_model(tensors, [hm.Op("FULLY_CONNECTED", [0, 1, -1], [2])])) == ""


def test_model_without_subgraphs_or_buffers_is_refused():
    """crash-1-398654: byte flips dropped both vectors; InterpreterBuilder read null."""
    def drop(m):
        m.subgraphs, m.buffers = None, None
    assert check_model(_edit(_quantized_chain("DEQUANTIZE", [0]), drop)) == (
        f"{MALFORMED}the model has no subgraphs")


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: setattr(m.subgraphs[0].tensors[1], "buffer", 9),
     "tensor 1 refers to buffer 9; the model has 1"),
    (lambda m: setattr(m.subgraphs[0].operators[1], "inputs", [4]),
     "operator 1 (LceQuantize): an input refers to tensor 4; the subgraph has 4"),
    (lambda m: setattr(m.subgraphs[0].operators[2], "outputs", [-2]),
     "operator 2 (LceDequantize): an output refers to tensor -2"),
    (lambda m: setattr(m.subgraphs[0].operators[2], "opcodeIndex", 7),
     "operator 2 uses operator code 7; the model has 3"),
    (lambda m: setattr(m.subgraphs[0], "outputs", [11]),
     "a model output refers to tensor 11"),
    (lambda m: setattr(m.subgraphs[0].operators[0], "outputs", [-1]),
     "operator 0 (builtin op 6): an output is absent (-1)"),
])
def test_index_faults_are_refused(change, message):
    got = check_model(_edit(_quantized_chain("DEQUANTIZE", [0]), change))
    assert got.startswith(MALFORMED) and message in got, got


def test_constant_smaller_than_its_shape_is_refused():
    tensors = [hm.T((1, 8), model_input=True), hm.T((4, 8), data=bytes(100)), hm.T((1, 4))]
    got = check_model(hm.graph_model(tensors, [hm.Op("FULLY_CONNECTED", [0, 1, -1], [2])]))
    assert got == f"{MALFORMED}tensor 1 is a constant of shape [4, 8] (128 bytes) but buffer 1 holds 100 bytes"


def test_sparse_constants_are_left_to_the_op():
    """A sparse constant's buffer holds the compressed form: bitlite's prepare refuses
    sparse inputs with its own message (test_hardening), the check does not."""
    assert check_model(hm.sparse_quantize()) == ""


def test_any_bytes_give_a_message_never_an_exception():
    """Truncations and byte flips of a valid model: a string every time (the reader
    bounds-checks every offset), and the faults above are among what it finds."""
    model = _quantized_chain("DEQUANTIZE", [0])
    rng = random.Random(0)
    results = [check_model(model[:n]) for n in range(0, len(model), 7)]
    for _ in range(400):
        b = bytearray(model)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        results.append(check_model(bytes(b)))
    assert all(isinstance(r, str) for r in results)
    assert all(r.startswith(MALFORMED) for r in results[:len(model) // 7])  # truncated
    assert sum(r.startswith(MALFORMED) for r in results) > 100


def test_interpreter_refuses_before_the_host_parses(monkeypatch, runtime_library):
    """bitlite_runtime.Interpreter runs the check first: the host never sees the file."""
    host = hosts.resolve(None)
    monkeypatch.setattr(type(host), "interpreter_class",
                        property(lambda self: pytest.fail("the host got the model")))
    with pytest.raises(RuntimeModelError, match=r"^malformed model: .*input 0 is absent"):
        Interpreter(_quantized_chain("QUANTIZE", [-1]))


def test_schema_field_numbers_match_the_generated_reader():
    """The check's field numbers (TFLite's schema.fbs) against flatc's generated code:
    a schema change that moved a field would show here."""
    s = schema()
    model = s.Model.GetRootAs(_quantized_chain("DEQUANTIZE", [0]), 0)
    assert model.Subgraphs(0).Tensors(1).Buffer() == 0
    assert model._tab.Offset(4 + 2 * 4) != 0  # buffers: field 4
    assert model.Subgraphs(0)._tab.Offset(4 + 2 * 3) != 0  # operators: field 3


def test_tensor_name_that_is_not_utf8_is_refused(runtime_library):
    """crash-1-34154: a byte flip in a tensor name; LiteRT's get_output_details raised
    UnicodeDecodeError out of Interpreter's constructor."""
    def rename(m):
        m.subgraphs[0].tensors[3].name = b"\xcf\x80out\xcf"
    model = _edit(_quantized_chain("DEQUANTIZE", [0]), rename)
    assert check_model(model) == f"{MALFORMED}tensor 3's name is not UTF-8"
    with pytest.raises(RuntimeModelError, match="tensor 3's name is not UTF-8"):
        Interpreter(model)

"""runtime/src/tflite_abi.h against each installed host runtime, through the running
interpreter.

The delegate records what it read through our declarations of TFLite's structs
(bitlite_runtime.probe); each field is compared with the host's own view of the same
interpreter and with the model file. A field at the wrong offset, or a struct of the
wrong size (context->tensors is an array, so a wrong TfLiteTensor size shifts every
tensor after the first), fails here.
"""

from __future__ import annotations

import math

import bitlite_runtime
import numpy as np
import pytest
from bitlite_runtime import Interpreter
from runtime_models import host_params

from pipeline.tflite.reader import read_model

OURS = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "BitliteDecodeWeights",
        "BitliteKbitBconv2d", "BitliteKbitQuantize"}
TFLITE_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 6: np.bool_, 9: np.int8}
K_TFLITE_MMAP_RO, K_TFLITE_ARENA_RW = 1, 2
BUILTIN_CUSTOM, BUILTIN_DELEGATE = 32, 51
THREADS = 3  # not a default anywhere, so a misread field cannot match it by chance


@pytest.fixture(params=host_params())
def host(request) -> str:
    return request.param


@pytest.fixture(params=["main_case", "int8_case"])
def probed(request, host):
    """(probe, host interpreter, model) for one model: float and int8 tensors."""
    case = request.getfixturevalue(request.param)
    interpreter = Interpreter(case.model, num_threads=THREADS, host=host)
    return bitlite_runtime.probe(interpreter.delegate), interpreter, read_model(case.model)


def test_struct_sizes_are_the_declared_ones(probed):
    seen, _, _ = probed
    assert seen["sizes"] == {"pointer": 8, "TfLiteTensor": 112, "TfLiteRegistration": 88,
                             "TfLiteDelegate": 56}


def test_context_fields(probed):
    """tensors_size, GetExecutionPlan, recommended_num_threads read where they are."""
    seen, _, model = probed
    assert seen["prepared"]  # Prepare ran: the host read our TfLiteDelegate's flags
    assert seen["context"] == {"tensors_size": len(model.tensors),
                               "recommended_num_threads": THREADS,
                               "plan_size": len(model.ops)}


def test_claimed_nodes_and_their_registrations(probed):
    """TfLiteNode (inputs with -1 slots, outputs, custom options) and the host's
    placeholder TfLiteRegistration (builtin_code, custom_name, version, prepare NULL)."""
    seen, interpreter, model = probed
    host_ops = interpreter._interpreter._get_ops_details()
    expected = [i for i, op in enumerate(model.ops) if op.type in OURS]
    assert [c["node"] for c in seen["claimed"]] == expected
    for c in seen["claimed"]:
        op = model.ops[c["node"]]
        assert c["op"] == op.type == host_ops[c["node"]]["op_name"]
        assert (c["builtin_code"], c["version"], c["placeholder"]) == (BUILTIN_CUSTOM, 1, True)
        assert c["custom_options_size"] == len(op.custom_options)
        assert c["inputs"] == list(op.inputs) and c["outputs"] == list(op.outputs)
    assert any(-1 in c["inputs"] for c in seen["claimed"])  # absent inputs are seen as such


def test_tensors_of_claimed_nodes(probed):
    """TfLiteTensor: type, dims, bytes, name, quantization params and type, sparsity,
    allocation type of every tensor the claimed nodes touch, read from
    context->tensors[index] (a sparse tensor is probed in test_hardening.py)."""
    seen, interpreter, model = probed
    details = {d["index"]: d for d in interpreter._interpreter.get_tensor_details()}
    assert seen["tensors"]
    quantized = 0
    for index, t in seen["tensors"].items():
        i, stored = int(index), model.tensors[int(index)]
        dtype = np.dtype(TFLITE_TYPES[t["type"]])
        assert t["name"] == stored.name == details[i]["name"]
        assert dtype == details[i]["dtype"]
        assert t["dims"] == list(stored.shape)  # at delegation: the file's shapes
        assert t["bytes"] == math.prod(stored.shape) * dtype.itemsize
        scale, zero_point = details[i]["quantization"]
        assert (t["scale"], t["zero_point"]) == (pytest.approx(scale, rel=1e-7), zero_point)
        quantized += scale != 0
        # TfLiteTensor::quantization.type and ::sparsity, read past the other fields.
        scales = details[i]["quantization_parameters"]["scales"]
        assert t["quantization_type"] == (1 if len(scales) else 0)
        assert t["sparse"] is bool(details[i]["sparsity_parameters"]) is False
        constant = stored.data is not None
        assert t["allocation_type"] == (K_TFLITE_MMAP_RO if constant else K_TFLITE_ARENA_RW)
    if any(d["dtype"] == np.int8 for d in interpreter.input_details):
        assert quantized  # the int8 model puts real scales and zero points there


def test_kernels_the_host_made_from_our_registration(probed):
    """Our 88-byte TfLiteRegistration went in by value and came back whole; each kernel
    node carries our delegate (TfLiteNode::delegate) and one original op."""
    seen, interpreter, _ = probed
    host_ops = interpreter._interpreter._get_ops_details()
    assert len(seen["kernels"]) == len(seen["claimed"])  # one kernel per node
    for k, c in zip(seen["kernels"], seen["claimed"], strict=True):
        assert (k["name"], k["builtin_code"], k["version"]) == ("BitliteDelegate",
                                                               BUILTIN_DELEGATE, 1)
        assert k["ours"] and k["node_delegate_is_us"] and k["op"] == c["op"]
        assert host_ops[k["node"]]["op_name"] == "DELEGATE"
        assert k["outputs"] == c["outputs"]
        assert set(k["inputs"]) <= set(c["inputs"]) - {-1}


def test_threads_reach_the_kernels(probed):
    seen, interpreter, _ = probed
    assert seen["threads_seen"] == 0  # nothing ran yet
    interpreter.invoke([np.zeros(d["shape"], d["dtype"]) for d in interpreter.input_details])
    assert bitlite_runtime.probe(interpreter.delegate)["threads_seen"] == THREADS

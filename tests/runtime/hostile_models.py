"""Hand-built .tflite files with one bitlite op whose tensors a hostile (or broken) writer
chose: sparse constants backed by too few bytes, out-of-range quantization, outputs that
are constants or the op's own input. Built with TFLite's schema object API, no converter,
so every field is the test's choice."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flatbuffers import flexbuffers

from pipeline.tflite.reader import schema
from pipeline.tflite.rewrite import add_tensor, pack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime" / "fuzz"))
from fuzz_models import dense_sparsity  # noqa: E402  (the fuzzer's; one definition)

BCONV_OPTIONS = dict(channels_in=64, dilation_height_factor=1, dilation_width_factor=1,
                     fused_activation_function=0, pad_values=1, padding=0, stride_height=1,
                     stride_width=1)
POOL_OPTIONS = dict(filter_height=2, filter_width=2, padding=1, stride_height=2, stride_width=2)
TYPES = {np.float32: "FLOAT32", np.int32: "INT32", np.int8: "INT8", np.bool_: "BOOL"}


@dataclass
class T:
    """One tensor of the op: shape, dtype; `data` makes it a constant (bytes as given,
    possibly fewer than the shape needs); `sparse` adds (all-dense) sparsity metadata;
    `quant` = (scale, zero_point); `model_input` makes it a graph input."""

    shape: tuple[int, ...]
    dtype: type = np.float32
    data: bytes | None = None
    sparse: bool = False
    quant: tuple[float, int] | None = None
    model_input: bool = False


def _add(model, graph, t: T, name: str) -> int:
    index = add_tensor(model, graph, t.shape, TYPES[t.dtype], t.data, name)
    tensor = graph.tensors[index]
    if t.sparse:
        tensor.sparsity = dense_sparsity(t.shape)
    if t.quant is not None:
        q = schema().QuantizationParametersT()
        q.scale, q.zeroPoint = [float(t.quant[0])], [int(t.quant[1])]
        tensor.quantization = q
    return index


@dataclass
class Op:
    """One node of a graph_model: `op` a custom op name or a builtin's (e.g. "QUANTIZE"),
    inputs and outputs as indices into the model's tensors (-1: absent)."""

    op: str
    inputs: list[int]
    outputs: list[int]
    options: dict | None = None


def graph_model(tensors: list[T], ops: list[Op], outputs: list[int] | None = None) -> bytes:
    """A model of `tensors` and `ops`, in that order; graph inputs: the tensors marked
    model_input; graph outputs: `outputs`, default every op's outputs."""
    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    for i, t in enumerate(tensors):
        _add(model, graph, t, f"t{i}")
    codes: list[str] = []
    for op in ops:
        if op.op not in codes:
            codes.append(op.op)
            code = s.OperatorCodeT()
            builtin = getattr(s.BuiltinOperator, op.op, None)
            code.builtinCode = s.BuiltinOperator.CUSTOM if builtin is None else builtin
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.customCode = op.op if builtin is None else None
            code.version = 1
            model.operatorCodes.append(code)
        node = s.OperatorT()
        node.opcodeIndex, node.inputs, node.outputs = codes.index(op.op), op.inputs, op.outputs
        node.customOptions = list(bytes(flexbuffers.Dumps(op.options))) if op.options else None
        graph.operators.append(node)
    graph.inputs = [i for i, t in enumerate(tensors) if t.model_input]
    graph.outputs = [o for op in ops for o in op.outputs] if outputs is None else outputs
    return pack(model)


def op_model(op: str, inputs: list[T | None], outputs: list[T], options: dict | None = None,
             output_is_input: int | None = None) -> bytes:
    """A model of one custom op `op`. None in `inputs` is an absent (-1) input;
    `output_is_input=i` makes the op write into its own input i."""
    present = [t for t in inputs if t is not None]
    ins, n = [], 0
    for t in inputs:
        ins.append(-1 if t is None else n)
        n += t is not None
    outs = [len(present) + i for i in range(len(outputs))]
    if output_is_input is not None:
        outs = [ins[output_is_input]]
    return graph_model(present + list(outputs), [Op(op, ins, outs, options)])


def _bits(values: np.ndarray) -> bytes:
    return values.astype(np.int32).tobytes()


def sparse_quantize(sparse: bool = True) -> bytes:
    """LceQuantize of a constant float (1, 4096): sparse and backed by 4 bytes (the issue's
    reproducer), or dense with all 16 KiB (sparse=False: the control that runs)."""
    data = np.float32(-1.0).tobytes()
    if not sparse:
        data = np.where(np.arange(4096) % 3 == 0, -1.0, 1.0).astype(np.float32).tobytes()
    return op_model("LceQuantize", [T((1, 4096), data=data, sparse=sparse)],
                    [T((1, 128), np.int32)])


def sparse_dequantize(sparse: bool = True) -> bytes:
    data = _bits(np.array([0x5])) if sparse else _bits(np.full(128, 0x5))
    return op_model("LceDequantize", [T((1, 128), np.int32, data=data, sparse=sparse)],
                    [T((1, 4096))])


def _filter() -> bytes:
    return _bits(np.arange(8 * 3 * 3 * 2) * 2654435761 % 2**32)


def sparse_bconv(sparse: bool = True, tensor: int = 0) -> bytes:
    """LceBconv2d with its input (tensor=0) or filter (tensor=1) a sparse constant of 4
    bytes; the rest dense and whole."""
    full_input = _bits(np.arange(9 * 9 * 2) * 40503 % 2**32)
    inputs = [
        T((1, 9, 9, 2), np.int32, data=full_input, sparse=sparse and tensor == 0),
        T((8, 3, 3, 2), np.int32, data=_filter(), sparse=sparse and tensor == 1),
        T((8,), data=np.full(8, 0.5, np.float32).tobytes()),
        T((8,), data=np.zeros(8, np.float32).tobytes()),
        None,
    ]
    if sparse:
        inputs[tensor].data = inputs[tensor].data[:4]
    return op_model("LceBconv2d", inputs, [T((1, 9, 9, 8))], BCONV_OPTIONS)


def sparse_maxpool(sparse: bool = True) -> bytes:
    data = _bits(np.arange(9 * 9 * 2) * 7919 % 2**32)
    return op_model("LceBMaxPool2d",
                    [T((1, 9, 9, 2), np.int32, data=data[:4] if sparse else data, sparse=sparse)],
                    [T((1, 4, 4, 2), np.int32)], POOL_OPTIONS)


SPARSE_MODELS = {
    "LceQuantize": sparse_quantize,
    "LceDequantize": sparse_dequantize,
    "LceBconv2d": sparse_bconv,
    "LceBMaxPool2d": sparse_maxpool,
}


def dequantize_int8(zero_point: int, scale: float = 0.5) -> bytes:
    """x (1, 1) int32 input -> LceDequantize -> int8 (1, 32) with the given quantization."""
    return op_model("LceDequantize", [T((1, 1), np.int32, model_input=True)],
                    [T((1, 32), np.int8, quant=(scale, zero_point))])


def bconv_int8_output(scale: float, zero_point: int = 0) -> bytes:
    return op_model("LceBconv2d", [
        T((1, 9, 9, 2), np.int32, model_input=True),
        T((8, 3, 3, 2), np.int32, data=_filter()),
        T((8,), data=np.full(8, 0.5, np.float32).tobytes()),
        T((8,), data=np.zeros(8, np.float32).tobytes()),
        None,
    ], [T((1, 9, 9, 8), np.int8, quant=(scale, zero_point))], BCONV_OPTIONS)


def bconv_into_own_input() -> bytes:
    """A bitpacked-output LceBconv2d whose output tensor is its own input."""
    return op_model("LceBconv2d", [
        T((1, 9, 9, 2), np.int32, model_input=True),
        T((64, 3, 3, 2), np.int32, data=_bits(np.arange(64 * 18) * 31 % 2**32)),
        None, None,
        T((64,), np.int32, data=_bits(np.full(64, 100))),
    ], [], BCONV_OPTIONS, output_is_input=0)


def quantize_into_constant() -> bytes:
    """LceQuantize writing into a constant tensor (the model file's read-only mapping)."""
    return op_model("LceQuantize", [T((1, 64), model_input=True)],
                    [T((1, 2), np.int32, data=_bits(np.zeros(2)))])

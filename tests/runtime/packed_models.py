"""Hand-built .tflite files around BitliteDecodeWeights (schema object API, no converter),
so every byte of the codes, level table and scales is the test's choice."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flatbuffers import flexbuffers

from pipeline.tflite.reader import schema
from pipeline.tflite.rewrite import DECODE_OP, pack, pack_codes
from pipeline.tflite.rewrite import add_tensor as _tensor


@dataclass
class PackedSpec:
    """Weights ``scales[c] * levels[codes]`` of ``shape`` (channel ``axis``), consumed by
    a FULLY_CONNECTED when the shape is (units, features); the decoded weights are an
    output of the model too, so tests read exactly what the op wrote."""

    codes: np.ndarray
    levels: np.ndarray
    scales: np.ndarray
    bits: int
    axis: int = 0
    code_bytes: bytes | None = None  # override the packed stream (corrupt files)
    options: dict = field(default_factory=dict)  # override / drop (None) option keys
    constant_codes: bool = True

    def expected(self) -> np.ndarray:
        bshape = [1] * self.codes.ndim
        bshape[self.axis] = -1
        lv = self.levels.astype(np.float32)[self.codes]
        return self.scales.astype(np.float32).reshape(bshape) * lv  # float32 products


def random_spec(
    rng: np.random.Generator,
    bits: int,
    shape: tuple[int, ...],
    axis: int = 0,
    levels: int | None = None,
) -> PackedSpec:
    n_levels = levels or 2**bits
    codes = rng.integers(0, n_levels, shape)
    return PackedSpec(
        codes,
        rng.normal(size=n_levels).astype(np.float32),
        rng.uniform(0.01, 2, shape[axis]).astype(np.float32),
        bits,
        axis,
    )


def _opcode(model, builtin: int, custom: str | None = None) -> int:
    s = schema()
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.customCode, code.version = custom, 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def packed_model(spec: PackedSpec) -> bytes:
    """inputs: x (1, features) [and the codes, when not constant]; outputs: the decoded
    weights and, for 2-D weights, FULLY_CONNECTED(x, weights)."""
    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    shape = spec.codes.shape
    data = spec.code_bytes if spec.code_bytes is not None else pack_codes(spec.codes, spec.bits)
    x = _tensor(model, graph, (1, shape[-1]), "FLOAT32", name="x")
    codes = _tensor(
        model, graph, (len(data),), "UINT8", data if spec.constant_codes else None, "codes"
    )
    levels = _tensor(model, graph, spec.levels.shape, "FLOAT32", spec.levels.tobytes(), "levels")
    scales = _tensor(model, graph, spec.scales.shape, "FLOAT32", spec.scales.tobytes(), "scales")
    w = _tensor(model, graph, shape, "FLOAT32", name="weights")
    options = {"axis": spec.axis, "bits": spec.bits}
    options.update(spec.options)
    decode = s.OperatorT()
    decode.opcodeIndex = _opcode(model, s.BuiltinOperator.CUSTOM, DECODE_OP)
    decode.inputs, decode.outputs = [codes, levels, scales], [w]
    decode.customOptions = list(
        bytes(flexbuffers.Dumps({k: v for k, v in options.items() if v is not None}))
    )
    graph.operators.append(decode)
    outputs = [w]
    if len(shape) == 2:
        y = _tensor(model, graph, (1, shape[0]), "FLOAT32", name="y")
        fc = s.OperatorT()
        fc.opcodeIndex = _opcode(model, s.BuiltinOperator.FULLY_CONNECTED)
        fc.inputs, fc.outputs = [x, w, -1], [y]
        fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
        fc.builtinOptions = s.FullyConnectedOptionsT()
        graph.operators.append(fc)
        outputs.append(y)
    graph.inputs = [x] + ([] if spec.constant_codes else [codes])
    graph.outputs = outputs
    return pack(model)


def builtin_model(weights: np.ndarray) -> bytes:
    """x (1, features) -> FULLY_CONNECTED with constant weights (units, features) -> y:
    builtin ops only, nothing for bitlite's delegate to claim."""
    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    units, features = weights.shape
    x = _tensor(model, graph, (1, features), "FLOAT32", name="x")
    w = _tensor(model, graph, weights.shape, "FLOAT32", weights.astype(np.float32).tobytes(), "w")
    y = _tensor(model, graph, (1, units), "FLOAT32", name="y")
    fc = s.OperatorT()
    fc.opcodeIndex = _opcode(model, s.BuiltinOperator.FULLY_CONNECTED)
    fc.inputs, fc.outputs = [x, w, -1], [y]
    fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = s.FullyConnectedOptionsT()
    graph.operators.append(fc)
    graph.inputs, graph.outputs = [x], [y]
    return pack(model)

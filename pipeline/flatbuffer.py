"""Reading .tflite flatbuffers: operators, tensors and what they cost.

The schema bindings are the flatc-generated ``schema_py_generated.py`` that TensorFlow
ships; it needs only the ``flatbuffers`` package, so we load that one file by path instead
of importing TensorFlow (seconds, and absent on a Raspberry Pi).
"""

from __future__ import annotations

import functools
import importlib.util
from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.errors import BitliteError

TFLITE_MAGIC = b"TFL3"


class ModelFormatError(BitliteError):
    """The bytes are not a readable .tflite flatbuffer."""


@functools.cache
def schema() -> ModuleType:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise BitliteError("reading .tflite files needs the tensorflow package's schema file")
    root = next(iter(spec.submodule_search_locations))
    path = f"{root}/lite/python/schema_py_generated.py"
    file_spec = importlib.util.spec_from_file_location("bitlite_tflite_schema", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


@functools.cache
def _builtin_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_")}


@functools.cache
def _type_names() -> dict[int, str]:
    types = schema().TensorType
    return {v: k.lower() for k, v in vars(types).items() if not k.startswith("_")}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: bytes | None  # constant data (weights), None for activations


@dataclass
class Op:
    type: str  # builtin name (CONV_2D) or custom code (LceBconv2d)
    inputs: list[int]
    outputs: list[int]
    custom_options: bytes = b""


@dataclass
class TFLiteModel:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    size_bytes: int
    metadata: dict[str, bytes] = field(default_factory=dict)

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op.type for op in self.ops))

    def custom_ops(self) -> list[str]:
        return sorted({op.type for op in self.ops if op.type.startswith("Lce")})

    def macs(self) -> dict[str, int]:
        """Multiply-accumulates per inference by kind: binary (LceBconv2d), int8, float."""
        totals: Counter[str] = Counter()
        for op in self.ops:
            kind, count = _op_macs(self, op)
            if count:
                totals[kind] += count
        return {k: int(totals.get(k, 0)) for k in ("binary", "int8", "float")}


def _op_macs(model: TFLiteModel, op: Op) -> tuple[str, int]:
    if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LceBconv2d"):
        return "", 0
    out = model.tensors[op.outputs[0]]
    weights = model.tensors[op.inputs[1]]
    out_elems = int(np.prod(out.shape)) if out.shape else 0
    if op.type == "LceBconv2d":
        channels_in = int(custom_options(op).get("channels_in", 0))
        _, kh, kw, _ = weights.shape
        return "binary", out_elems * kh * kw * channels_in
    if op.type == "CONV_2D":
        _, kh, kw, cin = weights.shape
        per_output = kh * kw * cin
    elif op.type == "DEPTHWISE_CONV_2D":
        per_output = weights.shape[1] * weights.shape[2]
    else:  # FULLY_CONNECTED: weights (units, in_features)
        per_output = weights.shape[-1]
    kind = "int8" if weights.dtype == "int8" else "float"
    return kind, out_elems * per_output


def read_model(data: bytes) -> TFLiteModel:
    """Parse .tflite bytes; raise ModelFormatError (not a crash) on anything malformed."""
    if len(data) < 8 or data[4:8] != TFLITE_MAGIC:
        raise ModelFormatError("not a .tflite file (missing the TFL3 identifier)")
    try:
        model = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
        return _convert(model, len(data))
    except ModelFormatError:
        raise
    except Exception as err:  # flatbuffers raises bare struct/index errors on bad input
        raise ModelFormatError(
            f"corrupt or truncated .tflite file ({type(err).__name__})"
        ) from None


def _convert(model: Any, size: int) -> TFLiteModel:
    if not model.subgraphs:
        raise ModelFormatError("the .tflite file has no subgraph")
    graph = model.subgraphs[0]
    buffers = model.buffers or []
    names = _builtin_names()
    types = _type_names()
    tensors = []
    for t in graph.tensors or []:
        buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        raw = (
            bytes(buf.data) if buf is not None and buf.data is not None and len(buf.data) else None
        )
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(name, shape, types.get(t.type, str(t.type)), raw))
    ops = []
    for o in graph.operators or []:
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        kind = code.customCode.decode() if code.customCode else names.get(builtin, str(builtin))
        custom = bytes(o.customOptions) if o.customOptions is not None else b""
        ins = [int(i) for i in (o.inputs if o.inputs is not None else [])]
        outs = [int(i) for i in (o.outputs if o.outputs is not None else [])]
        ops.append(Op(kind, ins, outs, custom))
    metadata = {}
    for m in model.metadata or []:
        name = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        buf = buffers[m.buffer] if 0 <= m.buffer < len(buffers) else None
        metadata[name] = bytes(buf.data) if buf is not None and buf.data is not None else b""
    return TFLiteModel(tensors, ops, list(graph.inputs), list(graph.outputs), size, metadata)


def custom_options(op: Op) -> dict[str, Any]:
    """A custom op's options: LCE writes them as a FlexBuffer map."""
    if not op.custom_options:
        return {}
    from flatbuffers import flexbuffers

    try:
        value = flexbuffers.Loads(op.custom_options)
    except Exception as err:  # malformed bytes raise assorted low-level errors
        raise ModelFormatError(f"{op.type}: unreadable custom options ({err})") from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{op.type}: custom options are not a map")
    return value

"""Reading .tflite flatbuffers: operators, tensors and what they cost.

The schema bindings are the flatc-generated ``schema_py_generated.py`` that LiteRT
(``ai-edge-litert``) and TensorFlow both ship; it needs only the ``flatbuffers`` package,
so we load that one file by path instead of importing either package (TensorFlow takes
seconds and is absent on a Raspberry Pi or in an app's CI).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.errors import BitliteError, CorruptFileError

TFLITE_MAGIC = b"TFL3"
METADATA_NAME = "bitlite_metadata"  # JSON for apps, same content as the model.json sidecar


class ModelFormatError(CorruptFileError):
    """The bytes are not a readable, self-consistent .tflite flatbuffer (exit 2)."""


# Where installed packages keep the generated schema, relative to the package folder.
SCHEMA_FILES = (
    ("ai_edge_litert", "schema_py_generated.py"),
    ("tensorflow", "lite/python/schema_py_generated.py"),
)


def schema_path() -> Path:
    """The first generated TFLite schema reader found among installed packages."""
    for package, relative in SCHEMA_FILES:
        spec = importlib.util.find_spec(package)  # finds the folder, imports nothing
        for root in (spec.submodule_search_locations or []) if spec else []:
            if (Path(root) / relative).is_file():
                return Path(root) / relative
    raise BitliteError(
        "reading .tflite files needs TFLite's generated schema: pip install ai-edge-litert"
    )


@functools.cache
def schema() -> ModuleType:
    path = schema_path()
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
    scale: float | None = None  # the first quantization scale of a quantized tensor


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
        """Custom ops stock TFLite lacks: LCE's (Lce*) and bitlite_runtime's (Bitlite*)."""
        return sorted({op.type for op in self.ops if op.type.startswith(("Lce", "Bitlite"))})

    def lce_ops(self) -> list[str]:
        return [op for op in self.custom_ops() if op.startswith("Lce")]

    def bitlite_ops(self) -> list[str]:
        """Ops only bitlite_runtime has (LCE's interpreter cannot load such a file)."""
        return [op for op in self.custom_ops() if op.startswith("Bitlite")]

    def producer(self, tensor: int) -> Op | None:
        return next((op for op in self.ops if tensor in op.outputs), None)

    def weights(self) -> list[WeightInfo]:
        """Each weight tensor as stored in the file, behind any DEQUANTIZE (int8 weights)
        or BitliteDecodeWeights (k-bit codes: dtype ``packed{k}``, bytes = the codes; the
        level table and per-channel scales, like int8's scales, are not counted)."""
        found = []
        for op in self.ops:
            if op.type not in WEIGHT_OPS or len(op.inputs) < 2:
                continue
            idx, dtype = None, None
            for i in _behind(self, op.inputs[1]):
                if self.tensors[i].data is not None:
                    idx = i
                    break
                source = self.producer(i)
                if source is not None and source.type == DECODE_OP:
                    dtype = f"packed{int(custom_options(source).get('bits', 0))}"
            if idx is None:
                continue  # computed at run time from no stored tensor: not a weight
            t = self.tensors[idx]
            found.append(
                WeightInfo(
                    op.type,
                    t.name,
                    t.shape,
                    dtype or t.dtype,
                    len(t.data),
                    _logical_weights(self, op),
                    self.tensors[op.outputs[0]].name.split(";")[0],
                )
            )
        return found

    def macs(self) -> dict[str, int]:
        """Multiply-accumulates per inference by kind: binary (LceBconv2d), int8, float."""
        totals: Counter[str] = Counter()
        for op in self.ops:
            kind, count = op_macs(self, op)
            if count:
                totals[kind] += count
        return {k: int(totals.get(k, 0)) for k in ("binary", "int8", "float")}


def gzip_size(data: bytes) -> int:
    """What a file costs to download inside a compressed app bundle (gzip -9, no mtime)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def weight_totals(weights: list[WeightInfo]) -> tuple[int, int, float]:
    """Bytes stored, weights held (unpacked) and the mean bits stored per weight."""
    stored = sum(w.bytes for w in weights)
    count = sum(w.count for w in weights)
    return stored, count, 8 * stored / count if count else 0.0


DECODE_OP = "BitliteDecodeWeights"  # k-bit packed weights (pipeline.tflite.rewrite)
KBIT_CONV_OP = "BitliteKbitBconv2d"  # the fused k-bit convolution (pipeline.tflite.kbit_chains)
KBIT_QUANTIZE_OP = "BitliteKbitQuantize"  # float -> k-bit activation planes (the same)
# What each op only bitlite's runtime has does: the reports and tools.inspect name them.
BITLITE_OP_ROLES = {
    DECODE_OP: "k-bit packed weights",
    KBIT_CONV_OP: "fused k-bit convolution over activation bit planes",
    KBIT_QUANTIZE_OP: "float -> k-bit activation bit planes",
}
BINARY_OPS = ("LceBconv2d", KBIT_CONV_OP)  # binary filters: (out, kh, kw, 32-channel words)
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", *BINARY_OPS)


def bitlite_op_roles(ops: list[str]) -> str:
    """``Op (what it does), …`` for ops only bitlite's runtime has."""
    return ", ".join(f"{op} ({BITLITE_OP_ROLES.get(op, 'bitlite op')})" for op in ops)


@dataclass
class WeightInfo:
    op: str
    name: str
    shape: tuple[int, ...]  # as stored (LceBconv2d: 32 input channels per int32)
    dtype: str
    bytes: int
    count: int  # weights the op multiplies with (unpacked)
    output: str = ""  # the op's output tensor: names the layer when the weight is "arith.constant"

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.bytes / self.count if self.count else 0.0


# The weight ranks each op's kernel must have (FULLY_CONNECTED: (units, in_features)).
WEIGHT_RANKS = {"CONV_2D": (4,), "DEPTHWISE_CONV_2D": (4,), "LceBconv2d": (4,),
                KBIT_CONV_OP: (4,), "FULLY_CONNECTED": (2,)}  # fmt: skip


# Ops that turn a stored kernel into the one an op multiplies with, keeping its shape.
PASS_THROUGH = ("DEQUANTIZE", "QUANTIZE", DECODE_OP)


def _behind(model: TFLiteModel, index: int) -> Iterator[int]:
    """``index``, then the tensors it is computed from through :data:`PASS_THROUGH` ops:
    int8 weights (DEQUANTIZE), k-bit codes (BitliteDecodeWeights) and a float baseline of
    an int8-qat model (float constant -> QUANTIZE -> DEQUANTIZE). Stops at a cycle, which
    only a damaged file has."""
    seen: set[int] = set()
    while index not in seen:
        seen.add(index)
        yield index
        source = model.producer(index)
        if source is None or source.type not in PASS_THROUGH:
            return
        if not source.inputs or source.inputs[0] < 0:
            return
        index = source.inputs[0]


def weight_shape(model: TFLiteModel, op: Op) -> tuple[int, ...]:
    """The shape of ``op``'s kernel, checked against the op.

    A kernel computed at run time (TF-MOT's int8-qat fully-connected layers: QUANTIZE ->
    DEQUANTIZE of a float constant) may carry no shape of its own (``()``): its shape is
    then that of the tensor it is computed from."""
    shape = next((s for i in _behind(model, op.inputs[1]) if (s := model.tensors[i].shape)), ())
    if len(shape) not in WEIGHT_RANKS[op.type] or any(d < 0 for d in shape):
        name = model.tensors[op.inputs[1]].name
        raise ModelFormatError(f"{op.type}: its weights '{name}' have shape {list(shape)}, "
                               f"not rank {WEIGHT_RANKS[op.type][0]}")  # fmt: skip
    return shape


def _channels_in(op: Op) -> int:
    channels = custom_options(op).get("channels_in")
    if not isinstance(channels, int) or channels < 1:
        raise ModelFormatError(f"{op.type}: custom options lack a valid 'channels_in'")
    return channels


def _logical_weights(model: TFLiteModel, op: Op) -> int:
    shape = weight_shape(model, op)
    if op.type in BINARY_OPS:  # (out, kh, kw, words): channels_in bits used of each row
        return int(shape[0] * shape[1] * shape[2] * _channels_in(op))
    return int(np.prod(shape))


def op_macs(model: TFLiteModel, op: Op) -> tuple[str, int]:
    if op.type not in WEIGHT_OPS:
        return "", 0
    out = model.tensors[op.outputs[0]]
    shape = weight_shape(model, op)
    out_elems = int(np.prod(out.shape)) if out.shape else 0
    if op.type == "LceBconv2d":
        # The output may be bitpacked (32 channels per int32 when a binary layer follows):
        # count output positions times the filter count instead of output elements.
        filters, kh, kw, _ = shape
        positions = int(np.prod(out.shape[:-1])) if out.shape else 0
        return "binary", positions * filters * kh * kw * _channels_in(op)
    if op.type == KBIT_CONV_OP:
        filters, kh, kw, _ = shape
        return "binary", _kbit_positions(model, op, kh, kw) * filters * kh * kw * _channels_in(op)
    if op.type == "CONV_2D":
        _, kh, kw, cin = shape
        per_output = kh * kw * cin
    elif op.type == "DEPTHWISE_CONV_2D":
        per_output = shape[1] * shape[2]
    else:  # FULLY_CONNECTED: weights (units, in_features)
        per_output = shape[-1]
    # int8 arithmetic needs int8 activations too; int8 weights behind a DEQUANTIZE and
    # packed ones behind BitliteDecodeWeights (our low-bit storage) multiply in float.
    kind = "int8" if model.tensors[op.inputs[0]].dtype == "int8" else "float"
    return kind, out_elems * per_output


def _kbit_positions(model: TFLiteModel, op: Op, kh: int, kw: int) -> int:
    """Convolution positions × activation planes of a fused k-bit op: every binary product
    counted, as for LceBconv2d. Its output may be pooled or the next layer's planes, so
    the positions come from its input planes ``[planes · n, h, w, words]`` and options."""
    shape = model.tensors[op.inputs[0]].shape
    if len(shape) != 4 or min(shape) < 1:
        return 0
    o = custom_options(op)
    sh, sw = int(o.get("stride_height", 1)) or 1, int(o.get("stride_width", 1)) or 1
    if o.get("padding", 1) == 0:  # SAME
        ho, wo = -(-shape[1] // sh), -(-shape[2] // sw)
    else:
        ho, wo = max(0, (shape[1] - kh) // sh + 1), max(0, (shape[2] - kw) // sw + 1)
    return int(shape[0]) * ho * wo  # the batch axis holds planes × n


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
            f"corrupt or truncated .tflite file ({len(data):,} bytes; the flatbuffer does not "
            f"parse: {type(err).__name__}: {str(err)[:80]})"
        ) from None


def _convert(model: Any, size: int) -> TFLiteModel:
    if not model.subgraphs:
        raise ModelFormatError("the .tflite file has no subgraph")
    graph = model.subgraphs[0]
    buffers = model.buffers or []
    names = _builtin_names()
    types = _type_names()
    tensors = []
    if model.operatorCodes is None and graph.operators:
        raise ModelFormatError("the .tflite file has operators but no operator codes")
    for t in graph.tensors or []:
        buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        raw = (
            bytes(buf.data) if buf is not None and buf.data is not None and len(buf.data) else None
        )
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else None
        tensors.append(Tensor(name, shape, types.get(t.type, str(t.type)), raw, scale))
    ops = []
    for i, o in enumerate(graph.operators or []):
        if not 0 <= o.opcodeIndex < len(model.operatorCodes):
            raise ModelFormatError(f"operator {i} names operator code {o.opcodeIndex}, "
                                   f"but the file has {len(model.operatorCodes)}")  # fmt: skip
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        kind = code.customCode.decode() if code.customCode else names.get(builtin, str(builtin))
        custom = bytes(o.customOptions) if o.customOptions is not None else b""
        ins = [int(i) for i in (o.inputs if o.inputs is not None else [])]
        outs = [int(i) for i in (o.outputs if o.outputs is not None else [])]
        ops.append(Op(kind, ins, outs, custom))
        _check_indices(f"operator {i} ({kind})", ins, outs, len(tensors))
        if kind in WEIGHT_OPS and (len(ins) < 2 or ins[1] < 0 or not outs):
            raise ModelFormatError(f"operator {i} ({kind}) lacks its weights or its output")
    inputs, outputs = [int(i) for i in graph.inputs], [int(i) for i in graph.outputs]
    _check_indices("the subgraph", inputs, outputs, len(tensors), optional=False)
    metadata = {}
    for m in model.metadata or []:
        name = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        buf = buffers[m.buffer] if 0 <= m.buffer < len(buffers) else None
        metadata[name] = bytes(buf.data) if buf is not None and buf.data is not None else b""
    return TFLiteModel(tensors, ops, inputs, outputs, size, metadata)


def _check_indices(where: str, ins: list[int], outs: list[int], n_tensors: int,
                   optional: bool = True) -> None:  # fmt: skip
    """Every tensor index in range (an op's -1 is TFLite's "optional input absent"): a
    parseable but inconsistent file is one clear error, not an IndexError later."""
    low = -1 if optional else 0
    bad = [i for i in ins if not low <= i < n_tensors]
    bad += [i for i in outs if not 0 <= i < n_tensors]
    if bad:
        raise ModelFormatError(f"{where} refers to tensor {bad[0]}, but the file has "
                               f"{n_tensors} tensors")  # fmt: skip


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

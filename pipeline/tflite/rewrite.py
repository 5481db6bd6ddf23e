"""Flatbuffer-level rewrites after conversion: low-bit float32 weights -> int8, metadata.

LCE (and TFLite) store ternary, power-of-two and k-bit weights as float32: 32 bits for a
value that needs 2 to 8. Here every float32 weight tensor of a CONV_2D,
DEPTHWISE_CONV_2D or FULLY_CONNECTED is checked, output channel by output channel, for a
grid ``w = s_c · q`` with integer ``|q| <= 127``:

- ternary ``{-α, 0, α}`` -> ``q ∈ {-1, 0, 1}``, ``s_c = α`` (exact);
- BWN / ±1 weights -> ``q = ±1``, ``s_c = α_c`` (exact);
- k-bit uniform (symmetric or DoReFa's odd grid ``(2i - (2^k-1)) / (2^k-1)``) -> exact up
  to k = 7 (``|q| <= 2^k - 1 <= 127``); DoReFa's 8-bit grid needs ``|q| = 255`` and does
  not fit;
- powers of two ``±2^n`` -> exact when the exponents span at most 7 octaves
  (``2^6 = 64 <= 127``; INQ 5-bit spans 8 and does not fit).

Batch norm folded into the weights by the converter scales a whole output channel, so the
grid survives. A batch norm feeding a dense layer directly (no activation between) is
folded into its *input* columns instead, which does break the grid: that tensor stays
float32 and the report says so. A fitting tensor is stored as int8 with per-channel scales (zero point 0,
TFLite's weight convention) and a DEQUANTIZE op in front of its consumer; TFLite
dequantizes constant inputs once, at load, so the arithmetic stays float and the outputs
equal the float32 model's (``s_c · q`` reproduces each value to float32 rounding). A
tensor that does not fit stays float32, and the report says so and what storing it as
plain per-channel int8 anyway would cost (the largest error relative to the channel's
largest weight).

Packing (opt-in, ``packed=True``; ``python -m pipeline.export --pack-weights``): int8 caps
the ratio to float32 at 4×. A tensor whose values, per output channel divided by its
scale ``s_c``, take at most ``2^k`` levels for ``k <= 4`` (ternary: 3 levels, k = 2;
power-of-two sets of up to 15 levels; soft weight-sharing's <= 16 shared means) is
stored as k-bit codes (LSB first), a float32 level table and the per-channel scales, and
bitlite's custom op ``BitliteDecodeWeights`` in front of its consumer computes
``w = s_c · levels[code]`` once, at the first invoke. On the int8 grid the level table
holds the integers ``q`` and the scales are the int8 path's, so the decoded weights equal
DEQUANTIZE's ``s_c · float(q)`` bit for bit; a shared-value tensor off the grid keeps its
own values as levels with ``s_c = 1`` (exact too). Such a file runs only on bitlite's
runtime (``bitlite_runtime``): neither LCE's interpreter nor stock TFLite has the op.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.tflite.reader import (
    DECODE_OP,
    METADATA_NAME,
    TFLITE_MAGIC,
    ModelFormatError,
    schema,
)

QMAX = 127
GRID_RTOL = 2e-6  # relative to the channel's largest |w|: float32 rounding of s·q
CHANNEL_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3}  # of each op's weights
PACK_MAX_BITS = 4  # above 16 levels int8 is as small as it gets (k = 5..8 saves <= 3 bits)


@dataclass
class WeightReport:
    tensor: str
    op: str
    shape: tuple[int, ...]
    stored: str  # "int8" | "float32" | "packed{k}" (k-bit codes, see module doc)
    levels: int  # distinct values in the tensor (max over channels)
    exact: bool  # int8 grid reproduces every value
    reason: str = ""
    int8_error: float = 0.0  # max |w - s q| / max|w| per channel, if stored as int8

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}  # JSON-equal to what it reads back


def fit_grid(channel: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(s, q)`` with ``channel == s * q`` (to float32 rounding), ``|q| <= 127``; or None.

    ``s`` is the smallest non-zero magnitude divided by the smallest ``k`` that makes every
    value an integer multiple of ``s``; k > 1 covers grids whose level 1 is unused."""
    w = channel.astype(np.float64).ravel()
    mags = np.abs(w[w != 0])
    if mags.size == 0:
        return 1.0, np.zeros(channel.shape, np.int8)
    smallest, largest = mags.min(), mags.max()
    tol = GRID_RTOL * largest
    for k in range(1, int(QMAX * smallest / largest * (1 + 1e-6)) + 1):
        q = np.round(w / (smallest / k))
        s = np.float32(np.dot(q, w) / np.dot(q, q))  # least squares: s from every value
        back = (q.astype(np.float32) * s).astype(np.float64)  # what DEQUANTIZE computes
        if np.abs(q).max() <= QMAX and np.all(np.abs(back - w) <= tol):
            return float(s), q.astype(np.int8).reshape(channel.shape)
    return None


def plain_int8_error(channel: np.ndarray) -> float:
    """What symmetric max-abs int8 (``s = max|w| / 127``) costs, relative to max|w|."""
    top = float(np.abs(channel).max())
    if top == 0:
        return 0.0
    s = top / QMAX
    return float(np.abs(np.round(channel / s) * s - channel).max() / top)


def quantize_tensor(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel ``(q int8, scales)`` if every channel along ``axis`` fits a grid."""
    moved = np.moveaxis(w, axis, 0)
    qs, scales = [], []
    for channel in moved:
        fit = fit_grid(channel)
        if fit is None:
            return None
        scales.append(fit[0])
        qs.append(fit[1])
    return np.moveaxis(np.stack(qs), 0, axis), np.asarray(scales, np.float32)


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """k-bit codes, code ``i`` in bits ``[i·k, (i+1)·k)`` of the stream, LSB first."""
    c = np.asarray(codes, np.uint32).ravel()
    if c.size and (bits < 1 or bits > 8 or int(c.max()) >= 1 << bits):
        raise ValueError(f"codes do not fit {bits} bits")
    stream = ((c[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(stream.ravel(), bitorder="little").tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    """The inverse of :func:`pack_codes` (what BitliteDecodeWeights reads)."""
    if len(data) != (count * bits + 7) // 8:
        raise ValueError(f"{len(data)} bytes do not hold {count} codes of {bits} bits")
    stream = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: count * bits]
    return (stream.reshape(count, bits).astype(np.uint32) << np.arange(bits)).sum(1)


def code_levels(values: np.ndarray, max_bits: int = PACK_MAX_BITS):
    """``(bits, levels, codes)`` with ``values == levels[codes]``, or None above
    ``2^max_bits`` distinct values. ``bits >= 1`` (a single level still needs a code)."""
    levels, codes = np.unique(values, return_inverse=True)
    if len(levels) > 1 << max_bits:
        return None
    bits = max(1, int(np.ceil(np.log2(len(levels)))))
    return bits, levels, codes.reshape(values.shape)


def _name(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _levels(w: np.ndarray, axis: int) -> int:
    return max(len(np.unique(c)) for c in np.moveaxis(w, axis, 0))


def load(flatbuffer: bytes) -> Any:
    if len(flatbuffer) < 8 or flatbuffer[4:8] != TFLITE_MAGIC:
        raise ModelFormatError("not a .tflite file (missing the TFL3 identifier)")
    return schema().ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)


def pack(model: Any) -> bytes:
    """Serialize a ModelT; buffers are 16-byte aligned as TFLite's schema asks."""
    import flatbuffers

    aligned = _aligned_buffer_class()
    for buf in model.buffers or []:
        buf.__class__ = aligned
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_MAGIC)
    return bytes(builder.Output())


@functools.cache
def _aligned_buffer_class() -> type:
    """flatc's BufferT packs data 1-byte aligned; TFLite wants 16 (``force_align: 16``)."""
    base = schema().BufferT

    class AlignedBuffer(base):  # type: ignore[misc, valid-type]
        def Pack(self, builder: Any) -> int:  # noqa: N802  (flatc's method name)
            s = schema()
            data = None
            if self.data is not None and len(self.data):
                raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), 16)
                builder.head -= len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector()
            s.BufferStart(builder)
            if data is not None:
                s.BufferAddData(builder, data)
            s.BufferAddOffset(builder, self.offset)
            s.BufferAddSize(builder, self.size)
            return s.BufferEnd(builder)

    return AlignedBuffer


def _opcode_index(model: Any, builtin: int, version: int, custom: str | None = None) -> int:
    """Index of the operator code for ``builtin`` (``custom``: a CUSTOM op by name),
    added when the model has none yet."""
    for i, code in enumerate(model.operatorCodes):
        name = _name(code.customCode) if code.customCode else None
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and name == custom:
            code.version = max(code.version, version)
            return i
    code = schema().OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    code.customCode = custom
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def int8_weights(
    flatbuffer: bytes, allow_inexact: bool = False, packed: bool = False
) -> tuple[bytes, list[WeightReport]]:
    """Store every low-bit float32 weight tensor as per-channel int8 (see module doc).

    ``allow_inexact`` also stores tensors whose levels do not fit, with plain max-abs
    int8 scales (their error is in the report). ``packed`` stores tensors of at most 16
    levels as k-bit codes behind ``BitliteDecodeWeights`` instead (bitlite_runtime only)."""
    s = schema()
    model = load(flatbuffer)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    codes = model.operatorCodes
    reports: list[WeightReport] = []
    dequantized: dict[int, int] = {}  # weight tensor -> its DEQUANTIZE output tensor
    new_ops = []
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        kind = (
            ""
            if code.customCode
            else names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")
        )
        if kind in CHANNEL_AXIS and len(op.inputs) > 1:
            idx = int(op.inputs[1])
            if idx not in dequantized:
                rep, deq = _quantize_weight(model, graph, idx, kind, allow_inexact, packed)
                if rep is not None:
                    reports.append(rep)
                if deq is not None:
                    dequantized[idx] = deq.outputs[0]
                    new_ops.append(deq)  # constant inputs: may run before everything else
            if idx in dequantized:
                op.inputs[1] = dequantized[idx]
    graph.operators = new_ops + list(graph.operators)
    return pack(model), reports


def _quantize_weight(
    model: Any, graph: Any, idx: int, kind: str, allow_inexact: bool, packed: bool
) -> tuple[WeightReport | None, Any]:
    """The tensor's report and the op (DEQUANTIZE / BitliteDecodeWeights) that now
    produces its float32 weights, or None where it stays float32."""
    s = schema()
    t = graph.tensors[idx]
    buf = model.buffers[t.buffer]
    if t.type != s.TensorType.FLOAT32 or buf.data is None or not len(buf.data):
        return None, None  # already int8/bitpacked, or not a constant
    axis = CHANNEL_AXIS[kind]
    shape = tuple(int(d) for d in t.shape)
    w = np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), np.float32).reshape(shape)
    rep = WeightReport(_name(t.name), kind, shape, "float32", _levels(w, axis), False)
    fit = quantize_tensor(w, axis)
    if fit is not None:
        q, scales = fit
        rep.exact, rep.stored = True, "int8"
        rep.int8_error = _grid_error(w, q, scales, axis)
    else:
        moved = np.moveaxis(w, axis, 0)
        rep.int8_error = max(plain_int8_error(c) for c in moved)
        rep.reason = (
            f"{rep.levels} levels per channel do not lie on an int8 grid "
            f"(s·q, |q| <= {QMAX}); plain int8 would cost {rep.int8_error:.2e} "
            "of each channel's largest weight"
        )
        shared = code_levels(w) if packed else None
        if shared is not None:  # e.g. soft weight-sharing: few values, off any int8 grid
            rep.exact = True
            rep.reason = f"off the int8 grid: its {len(shared[1])} values are the level table"
            ones = np.ones(shape[axis], np.float32)
            return rep, _replace_with_codes(model, graph, idx, rep, shared, ones, axis)
        if not allow_inexact:
            return rep, None
        scales = np.maximum(np.abs(moved).reshape(len(moved), -1).max(1), 1e-30) / QMAX
        scales = scales.astype(np.float32)
        bshape = [1] * w.ndim
        bshape[axis] = -1
        q = np.round(w / scales.reshape(bshape)).astype(np.int8)
        rep.stored = "int8"
    coded = code_levels(q) if packed else None
    if coded is not None:  # integer levels: s_c · level is DEQUANTIZE's s_c · float(q)
        return rep, _replace_with_codes(model, graph, idx, rep, coded, scales, axis)
    out = _replace_with_int8(model, graph, idx, q, scales, axis)
    deq = s.OperatorT()
    deq.opcodeIndex = _opcode_index(model, s.BuiltinOperator.DEQUANTIZE, 5)
    deq.inputs, deq.outputs = [idx], [out]
    return rep, deq


def _grid_error(w: np.ndarray, q: np.ndarray, scales: np.ndarray, axis: int) -> float:
    bshape = [1] * w.ndim
    bshape[axis] = -1
    back = q.astype(np.float32) * scales.reshape(bshape)
    top = np.maximum(np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(1), 1e-30)
    err = np.abs(np.moveaxis(back - w, axis, 0)).reshape(w.shape[axis], -1).max(1)
    return float((err / top).max())


def _replace_with_int8(
    model: Any, graph: Any, idx: int, q: np.ndarray, scales: np.ndarray, axis: int
) -> int:
    """Make tensor ``idx`` int8 + per-channel scales; return a new float32 tensor id."""
    s = schema()
    t = graph.tensors[idx]
    model.buffers[t.buffer].data = np.frombuffer(q.tobytes(), np.uint8).copy()
    quant = s.QuantizationParametersT()
    quant.scale = [float(x) for x in scales]
    quant.zeroPoint = [0] * len(scales)
    quant.quantizedDimension = axis
    t.type, t.quantization = s.TensorType.INT8, quant
    return add_tensor(model, graph, t.shape, "float32", None, _name(t.name) + "/dequantized")


def _replace_with_codes(
    model: Any,
    graph: Any,
    idx: int,
    rep: WeightReport,
    coded: tuple[int, np.ndarray, np.ndarray],
    scales: np.ndarray,
    axis: int,
) -> Any:
    """Make tensor ``idx`` the uint8 code stream; return the BitliteDecodeWeights op
    (inputs: codes, level table, scales; output: a new float32 tensor of the weights)."""
    from flatbuffers import flexbuffers

    s = schema()
    bits, levels, codes = coded
    t = graph.tensors[idx]
    name, shape = _name(t.name), list(t.shape)
    data = pack_codes(codes, bits)
    model.buffers[t.buffer].data = np.frombuffer(data, np.uint8).copy()
    t.type, t.shape, t.quantization = s.TensorType.UINT8, [len(data)], None
    table = add_tensor(model, graph, [len(levels)], "float32", levels.astype(np.float32).tobytes(),
                       name + "/levels")  # fmt: skip
    scales = np.asarray(scales, np.float32)
    scale = add_tensor(model, graph, [len(scales)], "float32", scales.tobytes(), name + "/scales")
    out = add_tensor(model, graph, shape, "float32", None, name + "/decoded")
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, s.BuiltinOperator.CUSTOM, 1, DECODE_OP)
    op.inputs, op.outputs = [idx, table, scale], [out]
    options = flexbuffers.Dumps({"axis": int(axis), "bits": int(bits)})
    op.customOptions = np.frombuffer(bytes(options), np.uint8).copy()
    op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
    rep.stored = f"packed{bits}"
    return op


def add_tensor(
    model: Any,
    graph: Any,
    shape: tuple[int, ...] | list[int],
    dtype: str,
    data: bytes | None = None,
    name: str = "t",
) -> int:
    """Append a tensor (``dtype`` a TensorType name: ``"float32"``, ``"INT8"``...) to
    ``graph``, constant with its own buffer when ``data`` is given; returns its index."""
    s = schema()
    t = s.TensorT()
    t.shape, t.type, t.name, t.buffer = list(shape), getattr(s.TensorType, dtype.upper()), name, 0
    if data is not None:
        buf = s.BufferT()
        buf.data = np.frombuffer(data, np.uint8).copy()
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def embed_metadata(flatbuffer: bytes, meta: dict[str, Any]) -> bytes:
    """Add (or replace) ``bitlite_metadata``: the app sidecar's JSON inside the model."""
    s = schema()
    model = load(flatbuffer)
    payload = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8).copy()
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME]
    buf = s.BufferT()
    buf.data = payload
    model.buffers.append(buf)
    entry = s.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(entry)
    return pack(model)

"""A structural check of untrusted .tflite files, before the host runtime parses them.

The host interpreters trust a model's structure more than they should: fuzzing bitlite
with mutated models (runtime/fuzz/fuzz_models.py) made LiteRT's own code read through
null pointers — InterpreterBuilder on a model without subgraphs and buffers, XNNPACK's
VisitNode and REDUCE_WINDOW's Prepare on builtin ops with an absent (-1) input — and
kill the app. ``check_model`` refuses those faults, and the other index and size faults
a host would meet while building the graph, with one message; bitlite_runtime's
Interpreter calls it before handing the bytes to the host.

The reader is pure Python (struct over the flatbuffer's wire format, every offset
bounds-checked), with no dependency: it must run where the host is tflite-runtime,
which ships no schema reader. Field numbers are those of TFLite's schema.fbs.
"""

from __future__ import annotations

import math
import struct

MALFORMED = "malformed model: "  # every message starts with this

# TensorType -> bytes per element (STRING, RESOURCE, VARIANT and sub-byte types: not
# checked, their buffers are not one fixed size per element).
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16,
                  12: 8, 15: 4, 16: 2, 18: 2, 21: 1, 22: 1}
_CUSTOM = 32
# Builtin ops whose schema allows an absent (-1) input, and at which positions; None:
# any position (the recurrent ops' many optional weights and states). Any other builtin
# op with an absent input is refused: hosts read the missing tensor through a null
# pointer (XNNPACK's VisitNode for QUANTIZE and DEQUANTIZE, REDUCE_WINDOW's Prepare).
_OPTIONAL_INPUTS: dict[int, frozenset[int] | None] = {
    3: frozenset({2}),  # CONV_2D: bias
    4: frozenset({2}),  # DEPTHWISE_CONV_2D: bias
    9: frozenset({2}),  # FULLY_CONNECTED: bias
    15: frozenset({2}),  # LSH_PROJECTION: weight
    22: frozenset({1}),  # RESHAPE: shape
    27: frozenset({3}),  # SVDF: bias
    67: frozenset({3}),  # TRANSPOSE_CONV: bias
    132: frozenset({2}),  # CONV_3D: bias
    141: frozenset({3}),  # CONV_3D_TRANSPOSE: bias
    16: None, 24: None, 35: None, 44: None, 46: None, 52: None,  # LSTM / RNN family
}


class _Malformed(Exception):
    """A structural fault; its message is the one check_model returns."""


_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from
_SIZES = {"<b": 1, "<i": 4, "<I": 4, "<Q": 8}

# A table: (its position, its fields' offsets from the vtable).
Table = tuple[int, tuple[int, ...]]


class _Reader:
    """Bounds-checked access to the flatbuffer wire format (every offset is checked
    before use; struct would read a negative one from the end)."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def _check(self, pos: int, length: int, what: str, part: str = "") -> None:
        if pos < 0 or pos + length > self.size:
            raise _Malformed(f"{what}{part} lies outside the file ({self.size} bytes)")

    def u32(self, pos: int, what: str) -> int:
        self._check(pos, 4, what)
        return _U32(self.data, pos)[0]

    def table(self, pos: int, what: str) -> Table:
        self._check(pos, 4, what)
        vtable = pos - _I32(self.data, pos)[0]
        self._check(vtable, 4, what, "'s vtable")
        count = max(_U16(self.data, vtable)[0] - 4, 0) // 2
        self._check(vtable + 4, 2 * count, what, "'s vtable")
        return pos, struct.unpack_from(f"<{count}H", self.data, vtable + 4)

    @staticmethod
    def field(table: Table, field: int) -> int:
        """The field's absolute position, 0 when absent."""
        pos, offsets = table
        return pos + offsets[field] if field < len(offsets) and offsets[field] else 0

    def scalar(self, table: Table, field: int, fmt: str, what: str) -> int:
        at = self.field(table, field)
        if not at:
            return 0
        self._check(at, _SIZES[fmt], what)
        return struct.unpack_from(fmt, self.data, at)[0]

    def vector(self, table: Table, field: int, element: int, what: str) -> tuple[int, int] | None:
        """(first element's position, length), None when the field is absent."""
        at = self.field(table, field)
        if not at:
            return None
        start = at + self.u32(at, what)
        count = self.u32(start, what)
        self._check(start + 4, count * element, what)
        return start + 4, count

    def ints(self, table: Table, field: int, what: str) -> tuple[int, ...]:
        vec = self.vector(table, field, 4, what)
        return () if vec is None else struct.unpack_from(f"<{vec[1]}i", self.data, vec[0])

    def tables(self, table: Table, field: int, what: str) -> list[Table]:
        vec = self.vector(table, field, 4, what)
        if vec is None:
            return []
        start, count = vec
        relative = struct.unpack_from(f"<{count}I", self.data, start)
        return [self.table(start + 4 * i + r, what) for i, r in enumerate(relative)]

    def string(self, table: Table, field: int, what: str) -> bytes | None:
        vec = self.vector(table, field, 1, what)
        return None if vec is None else self.data[vec[0]:vec[0] + vec[1]]


def _buffer_sizes(r: _Reader, model: Table) -> list[int]:
    """Bytes of data each buffer holds (inline, or at offset/size past the flatbuffer)."""
    sizes = []
    for i, buf in enumerate(r.tables(model, 4, "buffers")):
        what = f"buffer {i}"
        offset = r.scalar(buf, 1, "<Q", what)
        if offset > 1:  # TFLite's large-model layout: the data follows the flatbuffer
            size = r.scalar(buf, 2, "<Q", what)
            r._check(offset, size, what, "'s data")
            sizes.append(size)
        else:
            data = r.vector(buf, 0, 1, what)
            sizes.append(0 if data is None else data[1])
    return sizes


def _opcodes(r: _Reader, model: Table) -> list[tuple[int, str]]:
    """(builtin code, printable name) of each operator code (a builtin's number: its
    name is in TFLite's schema, which this module does not carry)."""
    codes = []
    for i, code in enumerate(r.tables(model, 1, "operator codes")):
        what = f"operator code {i}"
        builtin = max(r.scalar(code, 0, "<b", what), r.scalar(code, 3, "<i", what))
        custom = r.string(code, 1, what) if builtin == _CUSTOM else None
        name = custom.decode(errors="replace") if custom is not None else f"builtin op {builtin}"
        codes.append((builtin, name))
    return codes


def _check_tensor(r: _Reader, t: Table, index: int, sizes: list[int]) -> None:
    what = f"tensor {index}"
    name = r.string(t, 3, what)
    try:  # the hosts' Python wrappers decode names (input/output details) as UTF-8
        (name or b"").decode()
    except UnicodeDecodeError:
        raise _Malformed(f"{what}'s name is not UTF-8") from None
    buffer = r.scalar(t, 2, "<I", what)
    if buffer >= len(sizes):
        raise _Malformed(f"{what} refers to buffer {buffer}; the model has {len(sizes)}")
    shape = r.ints(t, 0, what)
    element = _ELEMENT_BYTES.get(r.scalar(t, 1, "<b", what))
    # A constant: its buffer must hold every element (TFLite skips the check for sparse
    # tensors, whose buffer holds the compressed form, and external buffers).
    if (not sizes[buffer] or element is None or r.field(t, 6) or r.scalar(t, 10, "<I", what)
            or any(d < 0 for d in shape)):
        return
    need = math.prod(shape) * element
    if sizes[buffer] < need:
        raise _Malformed(f"{what} is a constant of shape {list(shape)} ({need} bytes) but "
                         f"buffer {buffer} holds {sizes[buffer]} bytes")


def _check_indices(indices: tuple[int, ...], count: int, what: str) -> None:
    for i in indices:
        if i < -1 or i >= count:
            raise _Malformed(f"{what} refers to tensor {i}; the subgraph has {count}")


def _check_operator(r: _Reader, op: Table, where: str, tensors: int,
                    codes: list[tuple[int, str]]) -> None:
    opcode = r.scalar(op, 0, "<I", where)
    if opcode >= len(codes):
        raise _Malformed(f"{where} uses operator code {opcode}; the model has {len(codes)}")
    builtin, name = codes[opcode]
    where = f"{where} ({name})"
    inputs, outputs = r.ints(op, 1, where), r.ints(op, 2, where)
    _check_indices(inputs, tensors, f"{where}: an input")
    _check_indices(outputs, tensors, f"{where}: an output")
    _check_indices(r.ints(op, 8, where), tensors, f"{where}: an intermediate")
    if builtin == _CUSTOM:
        return  # custom ops check their own tensors (bitlite's at prepare)
    optional = _OPTIONAL_INPUTS.get(builtin, frozenset())
    for position, tensor in enumerate(inputs):
        if tensor == -1 and optional is not None and position not in optional:
            raise _Malformed(f"{where}: input {position} is absent (-1) but required")
    if -1 in outputs:
        raise _Malformed(f"{where}: an output is absent (-1)")


def _check(r: _Reader) -> None:
    if r.size < 8:
        raise _Malformed(f"{r.size} bytes is too short for a TFLite flatbuffer")
    model = r.table(r.u32(0, "the root table"), "the model table")
    sizes = _buffer_sizes(r, model)
    codes = _opcodes(r, model)
    subgraphs = r.tables(model, 2, "subgraphs")
    if not subgraphs:
        raise _Malformed("the model has no subgraphs")
    for s, graph in enumerate(subgraphs):
        where = f"subgraph {s}"
        tensors = r.tables(graph, 0, f"{where}'s tensors")
        for i, t in enumerate(tensors):
            _check_tensor(r, t, i, sizes)
        _check_indices(r.ints(graph, 1, where), len(tensors), f"{where}: a model input")
        _check_indices(r.ints(graph, 2, where), len(tensors), f"{where}: a model output")
        for k, op in enumerate(r.tables(graph, 3, f"{where}'s operators")):
            _check_operator(r, op, f"{where} operator {k}", len(tensors), codes)


def check_model(content: bytes) -> str:
    """'' when `content`'s structure is sound, else the fault (starting with MALFORMED):
    indices of tensors, buffers and operator codes in range, constants' buffers holding
    their shape's bytes, builtin ops' required inputs present, tensor names UTF-8. Whether each op can run
    its tensors is the op's own check (bitlite's at prepare)."""
    try:
        _check(_Reader(bytes(content)))
    except _Malformed as e:
        return MALFORMED + str(e)
    except (struct.error, OverflowError, MemoryError) as e:  # belt and braces
        return MALFORMED + f"unreadable flatbuffer ({e})"
    return ""

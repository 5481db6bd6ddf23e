"""What a .tflite file is, checked before any runtime touches it.

TFLite's Python interpreter trusts its input: a truncated or damaged flatbuffer can crash
the process instead of raising. So the bench walks the parts of the flatbuffer it needs
— operator codes, subgraphs, tensors, buffers — with every offset bounds-checked, and
turns damage into one clear message. The same walk tells what kind of model it is:
``binary`` (Larq Compute Engine custom ops), ``int8`` (int8 weights) or ``float``.

Field numbers follow TFLite's schema.fbs (Model, OperatorCode, SubGraph, Tensor, Buffer).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError

IDENTIFIER = b"TFL3"
INT8, UINT8 = 9, 3  # TensorType values


class CorruptModel(UsageError):
    """The file is not a readable TFLite flatbuffer."""


class _Reader:
    """Bounds-checked access to flatbuffer tables, vectors and strings."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def u32(self, at: int) -> int:
        return self._unpack("<I", at)

    def _unpack(self, fmt: str, at: int) -> int:
        if at < 0 or at + struct.calcsize(fmt) > len(self.data):
            raise CorruptModel(f"offset {at} lies outside the file ({len(self.data)} bytes)")
        return struct.unpack_from(fmt, self.data, at)[0]

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of the table at ``table``, or 0 if absent."""
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return 0
        offset = self._unpack("<H", vtable + slot)
        return table + offset if offset else 0

    def deref(self, at: int) -> int:
        return at + self.u32(at)

    def vector(self, table: int, index: int, width: int = 4) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) if absent."""
        at = self.field(table, index)
        if not at:
            return 0, 0
        start = self.deref(at)
        length = self.u32(start)
        if start + 4 + length * width > len(self.data):
            raise CorruptModel(f"a vector at offset {start} runs past the end of the file")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index)
        return [self.deref(start + 4 * i) for i in range(length)]

    def string(self, table: int, index: int) -> str:
        start, length = self.vector(table, index, width=1)
        return self.data[start : start + length].decode("utf-8", "replace") if start else ""

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        at = self.field(table, index)
        return self._unpack(fmt, at) if at else default


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size_bytes: int
    kind: str  # "binary" | "int8" | "float"
    custom_ops: tuple[str, ...]
    n_ops: int

    @property
    def needs_lce_ops(self) -> bool:
        return self.kind == "binary"


def inspect_model(path: Path) -> ModelInfo:
    """Read and check a .tflite file; raise CorruptModel with one line if it is damaged."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model {path} does not exist")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise CorruptModel(f"{path} is not a TFLite model (no TFL3 file identifier)")
    try:
        return _walk(path, _Reader(data))
    except CorruptModel as err:
        raise CorruptModel(f"{path} is a damaged TFLite model: {err}") from None


def _walk(path: Path, r: _Reader) -> ModelInfo:
    root = r.deref(0)
    custom = tuple(
        name for code in r.tables(root, 1) if (name := r.string(code, 1))
    )
    buffers = r.tables(root, 4)
    for buf in buffers:
        r.vector(buf, 0, width=1)  # inline data must lie inside the file
        offset, size = r.scalar(buf, 1, "<Q"), r.scalar(buf, 2, "<Q")
        if offset > 1 and offset + size > len(r.data):  # data stored after the flatbuffer
            raise CorruptModel(f"buffer data at {offset}+{size} runs past the end of the file")
    n_ops, int8_weights = 0, False
    for subgraph in r.tables(root, 2):
        n_ops += r.vector(subgraph, 3)[1]
        for tensor in r.tables(subgraph, 0):
            r.vector(tensor, 0)  # shape
            dtype = r.scalar(tensor, 1, "<b")
            buffer = r.scalar(tensor, 2, "<I")
            if buffer >= len(buffers) and buffers:
                raise CorruptModel(f"a tensor names buffer {buffer} of {len(buffers)}")
            has_data = buffer and buffer < len(buffers) and r.vector(buffers[buffer], 0, 1)[1]
            int8_weights |= bool(has_data) and dtype in (INT8, UINT8)
    if any(name.startswith("Lce") for name in custom):
        kind = "binary"
    elif int8_weights:
        kind = "int8"
    else:
        kind = "float"
    return ModelInfo(path, len(r.data), kind, custom, n_ops)

"""Reading raw dataset files: checksums and the IDX format (MNIST, Fashion-MNIST)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from pipeline.errors import ChecksumError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    actual = sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: SHA-256 {actual[:16]}…, expected {expected[:16]}… "
            "(the file is corrupt or not the published one; delete it and reinstall its source)"
        )


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic 0x0000TTDD, D big-endian u32 dims."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ChecksumError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 0
    if len(raw) != header + count * dtype.itemsize:
        raise ChecksumError(f"{path} is truncated or padded: header says shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)

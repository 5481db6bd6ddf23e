"""IDX parsing and checksums on small files written in the real format."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from pipeline.data.files import read_idx, sha256, verify
from pipeline.errors import ChecksumError


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / ("imgs.gz" if gz else "imgs")
    write_idx(path, images, gz=gz)
    np.testing.assert_array_equal(read_idx(path), images)


def test_truncated_idx_is_an_error(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match="truncated"):
        read_idx(path)


def test_checksum_mismatch_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"abc")
    verify(path, sha256(path))  # the right hash passes
    path.write_bytes(b"abd")
    with pytest.raises(ChecksumError, match="train-labels-idx1-ubyte"):
        verify(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

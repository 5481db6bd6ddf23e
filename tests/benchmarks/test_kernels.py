"""benchmarks.kernels: each bitlite row is checked against the reference kernel that ran
its float ops on the same kernels (XNNPACK or the host's builtin ones)."""

from __future__ import annotations

import numpy as np

from benchmarks.kernels import BUILTIN, Subject, parity


def _subject(label: str, threads: int, y: list[float]) -> Subject:
    out = np.asarray(y, dtype=np.float32)
    return Subject(label, "binary", threads, lambda: None, lambda: out)


def test_parity_compares_rows_with_the_reference_on_the_same_float_kernels():
    xnn, builtin = [0.1, 0.9], [0.1000001, 0.9]  # the float ops round differently
    subjects = [
        _subject("bitlite reference", 1, xnn),
        _subject("bitlite avx512", 1, xnn),
        _subject("bitlite reference" + BUILTIN, 1, builtin),
        _subject("bitlite avx512" + BUILTIN, 2, builtin),
        _subject("bitlite avx2" + BUILTIN, 2, xnn),  # a kernel that went wrong
        _subject("int8 LiteRT + XNNPACK", 1, xnn),
    ]
    got = [parity(subjects).get(id(s)) for s in subjects]
    assert got == ["bit-exact", "bit-exact", "bit-exact", "bit-exact", "DIFFERS", None]


def test_parity_without_a_reference_says_so():
    subjects = [_subject("bitlite avx512" + BUILTIN, 1, [1.0])]
    assert parity(subjects) == {id(subjects[0]): "no reference"}

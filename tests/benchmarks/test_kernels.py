"""benchmarks.kernels: each bitlite row is checked against the reference kernel that ran
its float ops on the same kernels (XNNPACK or the host's builtin ones)."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from benchmarks.kernels import BUILTIN, Subject, ceilings_section, parity, peak_bench, ratio, run


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


def test_run_times_a_cold_invoke_then_a_warm_block_per_round():
    ticks = iter(range(1000))
    subject = _subject("bitlite avx512", 1, [0.0])
    calls = []
    subject.invoke = lambda: calls.append(1)
    run([subject], runs=4, clock=lambda: next(ticks), block=3)
    assert len(calls) == 3 + 4 * (1 + 3)  # sizing, then a cold + 3 warm per round
    assert len(subject.cold) == 4 and len(subject.rounds) == 4


def test_ratio_is_the_median_of_per_round_ratios():
    base, other = _subject("int8", 1, [0.0]), _subject("bitlite avx512", 1, [0.0])
    # A slow round (machine load) hits both: per-round ratios stay 2, 2, 2, and a round
    # only one of them ran does not count.
    base.rounds = {0: 2.0, 1: 2.0, 2: 20.0, 3: 5.0}
    other.rounds = {0: 1.0, 1: 1.0, 2: 10.0}
    assert ratio(base, other) == 2.0
    # The ratio of medians would say 2 / 1 = 2 here too, but not with an unequal split:
    other.rounds = {0: 1.0, 1: 0.5, 2: 10.0}
    assert ratio(base, other) == 2.0 and base.median_ms() / other.median_ms() != 2.0


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 instruction sequences")
def test_peak_bench_ranks_the_sequences_as_their_port_counts_do():
    """One binary AVX2 step (6 uops, 256 MACs) out-runs the AVX2 int8 step (3 uops, 32
    MACs) by about 4x, and the AVX-512 binary sequence the VNNI one by about 3x; a broken
    loop (optimised away, latency-bound, mislabelled) would not keep these orders."""
    peaks = peak_bench(runs=3)
    assert peaks["binary_avx2"] > 2 * peaks["int8_avx2"] > 0
    if "binary_avx512" in peaks and "int8_vnni512" in peaks:
        assert peaks["binary_avx512"] > 1.5 * peaks["int8_vnni512"] > 0
    if "int8_amx" in peaks:  # one TDPBUSD = 16,384 MACs every ~16 cycles: a matrix unit
        assert peaks["int8_amx"] > 4 * peaks["int8_vnni512"] > 0
        assert peaks["int8_amx"] > 1.5 * peaks["binary_avx512"]


def test_ceilings_section_gives_shares_and_the_bound():
    peaks = {"binary_avx512": 1200.0, "int8_vnni512": 400.0, "binary_avx2": 480.0}
    text = ceilings_section(peaks, [("vgg8: bitlite avx512", 900.0, "binary_avx512"),
                                    ("vgg8: int8", 440.0, "int8"),
                                    ("absent", 1.0, "float_avx512")])
    assert "| vgg8: bitlite avx512 | 900 | binary_avx512 | 75% |" in text
    assert "| vgg8: int8 | 440 | int8_vnni512 | 110% |" in text
    assert "absent" not in text
    assert "binary_avx512 / int8_vnni512 = **3.00×**" in text
    assert "binary_avx2 / int8_vnni512 = **1.20×**" in text


def test_ceilings_section_bounds_binary_by_the_amx_unit_too():
    peaks = {"binary_avx512": 1200.0, "int8_vnni512": 400.0, "int8_amx": 3000.0}
    text = ceilings_section(peaks, [("vgg8: int8 LiteRT", 600.0, "int8_amx")])
    assert "| vgg8: int8 LiteRT | 600 | int8_amx | 20% |" in text
    assert "binary_avx512 / int8_amx = **0.40×**" in text
    assert "binary_avx512 / int8_vnni512 = **3.00×**" in text

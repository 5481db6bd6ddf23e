"""benchmarks.kbit: the VGG-8 section's ceiling note."""

from __future__ import annotations

from benchmarks.kbit import ceiling_note


def test_ceiling_note_gives_the_floor_the_share_reached_and_the_share_needed():
    # 1.2 G products at 1,200 G/s: 1 ms at the ceiling; 1.6 ms reached = 62 %; int8 at
    # 1.25 ms needs 80 %
    text = ceiling_note(1_200_000_000, {"binary_avx512": 1200.0, "int8_amx": 3000.0}, 1.6, 1.25)
    assert "1.200 G binary products" in text and "(1,200 G/s" in text
    assert "at least 1.000 ms" in text
    assert "(1.600 ms) runs them at 62% of that ceiling" in text
    assert "(1.250 ms) (the AMX int8 ceiling is 2.50× this binary one on equal MACs) needs 80%" in text


def test_ceiling_note_without_avx512_says_so():
    text = ceiling_note(10, {"binary_avx2": 400.0}, 1.0, 1.0)
    assert text.startswith("Ceiling: this CPU has no AVX-512 VPOPCNTDQ")

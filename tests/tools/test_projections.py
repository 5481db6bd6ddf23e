"""Weight projections: the bit widths each accepts."""

from __future__ import annotations

import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.mark.parametrize("quantizer", ["po2", "uniform"])
@pytest.mark.parametrize("bits", [1, 9, 40])
def test_bit_widths_outside_2_to_8_are_refused_before_any_level_is_built(quantizer, bits):
    """``--bits 40`` once built a 2^38-element level list (po2) before failing."""
    from pipeline.errors import UsageError
    from tools import projections

    with pytest.raises(UsageError, match=f"--bits 2 to 8, got {bits}"):
        projections.get(quantizer).check_bits(bits)
    for ok in (2, 8):
        projections.get(quantizer).check_bits(ok)


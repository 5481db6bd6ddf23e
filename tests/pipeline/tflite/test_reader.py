"""The .tflite reader: clear errors on bad input, custom options, bitpacked MAC counts."""

from __future__ import annotations

import pytest

from pipeline.tflite.reader import ModelFormatError, Op, custom_options, read_model


@pytest.mark.parametrize(
    "blob", [b"", b"TFL3", b"\x00" * 64, b"\x10\x00\x00\x00TFL3" + b"\xff" * 40]
)
def test_garbage_is_a_model_format_error(blob):
    with pytest.raises(ModelFormatError):
        read_model(blob)


def test_custom_options_decode_and_fail_clearly():
    from flatbuffers import flexbuffers

    op = Op("LceBconv2d", [], [], bytes(flexbuffers.Dumps({"channels_in": 96})))
    assert custom_options(op) == {"channels_in": 96}
    assert custom_options(Op("LceQuantize", [], [])) == {}
    with pytest.raises(ModelFormatError, match="LceBconv2d"):
        custom_options(Op("LceBconv2d", [], [], b"\x01\x02"))
    with pytest.raises(ModelFormatError, match="not a map"):
        custom_options(Op("LceBconv2d", [], [], bytes(flexbuffers.Dumps([1, 2]))))


def test_bitpacked_bconv_output_counts_every_filter():
    """A bconv writing bitpacked output (32 channels per int32) still does filters × k × k ×
    channels_in MACs per position: count from the filter shape, not the output's last axis."""
    from flatbuffers import flexbuffers

    from pipeline.tflite.reader import Tensor, TFLiteModel

    tensors = [
        Tensor("x", (1, 4, 4, 2), "int32", None),
        Tensor("w", (64, 3, 3, 2), "int32", b"\x00" * 64 * 9 * 2 * 4),
        Tensor("y", (1, 4, 4, 2), "int32", None),  # 64 channels bitpacked into 2 words
    ]
    op = Op("LceBconv2d", [0, 1], [2], bytes(flexbuffers.Dumps({"channels_in": 64})))
    model = TFLiteModel(tensors, [op], [0], [2], 0)
    assert model.macs() == {"binary": 16 * 64 * 9 * 64, "int8": 0, "float": 0}
    (w,) = model.weights()
    assert w.count == 64 * 9 * 64 and w.bits_per_weight == 1.0

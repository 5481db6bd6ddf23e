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


def _graph():
    """An empty model and subgraph built with the schema's object API."""
    from pipeline.tflite.reader import schema

    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    return model, graph


def _add_op(model, graph, code: int, inputs: list[int], outputs: list[int]) -> None:
    from pipeline.tflite.reader import schema

    s = schema()
    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = code
    oc.version = 1
    model.operatorCodes.append(oc)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, inputs, outputs
    graph.operators.append(op)


def qat_float_dense() -> tuple[object, object]:
    """What TF's converter makes of an int8-qat dense layer in the float baseline: the
    float kernel (10, 64) goes through QUANTIZE -> DEQUANTIZE at run time, and both
    computed tensors have shape () — the shape of the IndexError in issue 18."""
    import numpy as np

    from pipeline.tflite.reader import schema
    from pipeline.tflite.rewrite import add_tensor

    ops = schema().BuiltinOperator
    model, graph = _graph()
    x = add_tensor(model, graph, (1, 64), "float32", name="x")
    w = add_tensor(model, graph, (10, 64), "float32", np.ones(640, np.float32).tobytes(), "w")
    wq = add_tensor(model, graph, (), "uint8", name="w/quantized")
    wd = add_tensor(model, graph, (), "float32", name="w/dequantized")
    y = add_tensor(model, graph, (1, 10), "float32", name="y")
    _add_op(model, graph, ops.QUANTIZE, [w], [wq])
    _add_op(model, graph, ops.DEQUANTIZE, [wq], [wd])
    _add_op(model, graph, ops.FULLY_CONNECTED, [x, wd, -1], [y])
    graph.inputs, graph.outputs = [x], [y]
    return model, graph


def test_dense_kernel_computed_at_run_time_takes_its_source_shape():
    from pipeline.tflite.rewrite import pack

    model = read_model(pack(qat_float_dense()[0]))
    assert model.macs() == {"binary": 0, "int8": 0, "float": 640}
    (w,) = model.weights()
    assert (w.name, w.shape, w.dtype, w.bytes, w.count) == ("w", (10, 64), "float32", 2560, 640)


def _damaged(edit) -> bytes:
    from pipeline.tflite.rewrite import pack

    model, graph = qat_float_dense()
    edit(model, graph)
    return pack(model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, g: setattr(g.operators[2], "inputs", [0, 99, -1]), "refers to tensor 99"),
        (lambda m, g: setattr(g.operators[1], "outputs", [-1]), "refers to tensor -1"),
        (lambda m, g: setattr(g.operators[0], "opcodeIndex", 7), "operator code 7"),
        (lambda m, g: setattr(g, "outputs", [5]), "the subgraph refers to tensor 5"),
        (lambda m, g: setattr(g.operators[2], "inputs", [0]), "lacks its weights"),
    ],
)
def test_inconsistent_indices_are_a_model_format_error(edit, message):
    """These parse as flatbuffers; indexing them used to raise IndexError (or silently read
    tensor -1, the last one)."""
    with pytest.raises(ModelFormatError, match=message):
        read_model(_damaged(edit))


def test_kernel_of_the_wrong_rank_is_a_model_format_error():
    blob = _damaged(lambda m, g: setattr(g.tensors[1], "shape", [640]))
    model = read_model(blob)  # indices are fine; the shapes only matter when counting
    with pytest.raises(ModelFormatError, match=r"FULLY_CONNECTED: its weights .* \[640\], not rank 2"):
        model.macs()

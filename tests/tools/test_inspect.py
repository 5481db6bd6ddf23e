"""tools.inspect on .tflite files whose every byte the test decides (built with the
schema's object API: no converter involved, so the expected numbers are exact)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.tflite.reader import ModelFormatError, read_model, schema
from pipeline.tflite.rewrite import add_tensor as _tensor
from pipeline.tflite.rewrite import pack
from tools.inspect import inspect, interpreter_note


def _op(model, graph, code: int | str, inputs, outputs, options: bytes = b"") -> None:
    s = schema()
    oc = s.OperatorCodeT()
    if isinstance(code, str):
        oc.builtinCode, oc.customCode = s.BuiltinOperator.CUSTOM, code
        oc.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    else:
        oc.builtinCode = oc.deprecatedBuiltinCode = code
    oc.version = 1
    model.operatorCodes.append(oc)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = (
        len(model.operatorCodes) - 1,
        list(inputs),
        list(outputs),
    )
    if options:
        op.customOptions = list(options)
    graph.operators.append(op)


def known_model(lce: bool = True) -> bytes:
    """input (1,8,8,8) -> float CONV_2D 16×3×3×8 (same) -> LceBconv2d 16×3×3×(8 of 32 bits)
    -> int8 weights via DEQUANTIZE -> FULLY_CONNECTED 10×64."""
    from flatbuffers import flexbuffers

    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    x = _tensor(model, graph, (1, 8, 8, 8), "float32", name="input")
    w1 = _tensor(model, graph, (16, 3, 3, 8), "float32", np.ones(16 * 72, np.float32).tobytes())
    h1 = _tensor(model, graph, (1, 8, 8, 16), "float32", name="conv1")
    _op(model, graph, s.BuiltinOperator.CONV_2D, [x, w1, -1], [h1])
    h = h1
    if lce:
        w2 = _tensor(model, graph, (16, 3, 3, 1), "int32", np.zeros(144, np.int32).tobytes())
        h2 = _tensor(model, graph, (1, 8, 8, 16), "float32", name="bconv")
        opts = flexbuffers.Dumps({"channels_in": 8, "padding": 0})
        _op(model, graph, "LceBconv2d", [h1, w2, -1, -1, -1], [h2], bytes(opts))
        h = h2
    flat = _tensor(model, graph, (1, 1024), "float32", name="flat")
    _op(model, graph, s.BuiltinOperator.RESHAPE, [h], [flat])
    w3 = _tensor(model, graph, (10, 1024), "int8", np.ones(10240, np.int8).tobytes(), "w3")
    w3f = _tensor(model, graph, (10, 1024), "float32", name="w3/dequantized")
    _op(model, graph, s.BuiltinOperator.DEQUANTIZE, [w3], [w3f])
    y = _tensor(model, graph, (1, 10), "float32", name="logits")
    _op(model, graph, s.BuiltinOperator.FULLY_CONNECTED, [flat, w3f, -1], [y])
    graph.inputs, graph.outputs = [x], [y]
    return pack(model)


def test_bits_per_weight_and_macs_of_a_known_file():
    info = inspect(known_model())
    rows = {w["op"]: w for w in info["weights"]}
    assert rows["CONV_2D"] == {
        **rows["CONV_2D"],
        "dtype": "float32",
        "bytes": 4608,
        "count": 1152,
        "bits_per_weight": 32.0,
    }
    # 8 input channels in a 32-bit word: 4 bits stored per binary weight
    assert rows["LceBconv2d"] == {
        **rows["LceBconv2d"],
        "dtype": "int32",
        "bytes": 576,
        "count": 1152,
        "bits_per_weight": 4.0,
    }
    assert rows["FULLY_CONNECTED"] == {
        **rows["FULLY_CONNECTED"],
        "dtype": "int8",
        "bytes": 10240,
        "count": 10240,
        "bits_per_weight": 8.0,
    }
    assert info["macs"] == {"binary": 64 * 16 * 72, "int8": 0, "float": 64 * 16 * 72 + 10240}
    assert info["custom_ops"] == ["LceBconv2d"]
    assert info["ops"] == {
        "CONV_2D": 1,
        "DEQUANTIZE": 1,
        "FULLY_CONNECTED": 1,
        "LceBconv2d": 1,
        "RESHAPE": 1,
    }
    assert info["weight_bytes"] == 4608 + 576 + 10240


def test_interpreter_is_named_plainly():
    assert "Larq Compute Engine" in interpreter_note(read_model(known_model(lce=True)))
    assert "any TFLite interpreter" in interpreter_note(read_model(known_model(lce=False)))


def _cli(*args: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "tools.inspect", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_table_and_json(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(known_model())
    out = _cli(str(path))
    assert out.returncode == 0, out.stderr
    assert (
        "LceBconv2d" in out.stdout and "4.00" in out.stdout and "Larq Compute Engine" in out.stdout
    )
    data = json.loads(_cli(str(path), "--json").stdout)
    assert data["bits_per_weight"] == pytest.approx(
        8 * (4608 + 576 + 10240) / (1152 + 1152 + 10240)
    )


@pytest.mark.parametrize("cut", [7, 100, -300])
def test_truncated_or_corrupt_file_is_one_clear_error(tmp_path, cut):
    blob = known_model()
    bad = blob[:cut] if cut > 0 else blob[:-300] if cut == -300 else blob
    with pytest.raises(ModelFormatError):
        read_model(bad)
    path = tmp_path / "bad.tflite"
    path.write_bytes(bad)
    out = _cli(str(path))
    assert out.returncode == 2  # bad input, as pipeline.bench says of the same file
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def _inconsistent(edit) -> bytes:
    """known_model() with one index or shape made inconsistent; it still parses."""
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(known_model()), 0)
    edit(model, model.subgraphs[0])
    return pack(model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, g: setattr(g.operators[-1], "inputs", [0, 500, -1]), "refers to tensor 500"),
        (lambda m, g: setattr(g.operators[0], "opcodeIndex", 40), "operator code 40"),
        (lambda m, g: setattr(g.tensors[1], "shape", [16, 72]), "not rank 4"),
        (lambda m, g: setattr(g.operators[1], "customOptions", None), "channels_in"),
    ],
)
def test_parseable_but_inconsistent_file_is_one_line_exit_2(tmp_path, edit, message):
    """These used to raise IndexError / KeyError with a traceback."""
    path = tmp_path / "odd.tflite"
    path.write_bytes(_inconsistent(edit))
    out = _cli(str(path))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert message in out.stderr and "Traceback" not in out.stderr


def test_bench_and_inspect_give_a_corrupt_file_the_same_exit_code(tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(known_model()[:100])
    bench = subprocess.run(
        [sys.executable, "-m", "pipeline.bench", "--model", str(path), "--target", "host"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    inspected = _cli(str(path))
    assert bench.returncode == inspected.returncode == 2, (bench.stderr, inspected.stderr)
    assert not (tmp_path / "bench-host.json").exists()


def packed_known_model() -> bytes:
    """A float file with two FULLY_CONNECTED layers whose weights the test chose: 10×1024
    ternary ``{-1, 0, 1}·0.5`` and 3×10 with five levels, packed by tflite_rewrite."""
    from pipeline.tflite.rewrite import int8_weights

    s = schema()
    model, graph = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    model.subgraphs, graph.tensors, graph.operators = [graph], [], []
    x = _tensor(model, graph, (1, 1024), "float32", name="input")
    tern = (np.arange(10240) % 3 - 1).astype(np.float32) * 0.5
    w1 = _tensor(model, graph, (10, 1024), "float32", tern.tobytes(), "w1")
    h = _tensor(model, graph, (1, 10), "float32", name="hidden")
    _op(model, graph, s.BuiltinOperator.FULLY_CONNECTED, [x, w1, -1], [h])
    five = (np.arange(30) % 5 - 2).astype(np.float32) * 0.25
    w2 = _tensor(model, graph, (3, 10), "float32", five.tobytes(), "w2")
    y = _tensor(model, graph, (1, 3), "float32", name="logits")
    _op(model, graph, s.BuiltinOperator.FULLY_CONNECTED, [h, w2, -1], [y])
    graph.inputs, graph.outputs = [x], [y]
    packed, reports = int8_weights(pack(model), packed=True)
    assert [r.stored for r in reports] == ["packed2", "packed3"]
    return packed


def test_packed_weights_count_their_bits_and_need_bitlite_runtime():
    info = inspect(packed_known_model())
    rows = {w["tensor"]: w for w in info["weights"]}
    assert rows["w1"] == {**rows["w1"], "dtype": "packed2", "bytes": 2560, "count": 10240,
                          "bits_per_weight": 2.0}  # fmt: skip
    # 30 three-bit codes: 90 bits in 12 bytes (the last one half used)
    assert rows["w2"] == {**rows["w2"], "dtype": "packed3", "bytes": 12, "count": 30,
                          "bits_per_weight": 3.2}  # fmt: skip
    assert info["custom_ops"] == ["BitliteDecodeWeights"]
    assert info["ops"] == {"BitliteDecodeWeights": 2, "FULLY_CONNECTED": 2}
    assert info["interpreter"].startswith("needs bitlite_runtime")
    assert "LCE's interpreter and stock TFLite cannot load" in info["interpreter"]
    assert info["macs"] == {"binary": 0, "int8": 0, "float": 10240 + 30}


def test_inspect_runs_without_tensorflow_or_larq(tmp_path, without_tensorflow):
    path = tmp_path / "m.tflite"
    path.write_bytes(known_model())
    cli = "import runpy; runpy.run_module('tools.inspect', run_name='__main__', alter_sys=True)"
    out = without_tensorflow(cli, "--json", str(path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ops"]["LceBconv2d"] == 1
    # the blocker really blocks: the same Python cannot import TensorFlow
    blocked = without_tensorflow("import tensorflow")
    assert blocked.returncode != 0 and "made unimportable" in blocked.stderr


def test_binary_products_list_each_bconv_with_its_planes():
    """A k-bit layer's planes ride on the batch axis of its LceBconv2d (issue 16):
    planes = the op's batch over the model's; one plane for a plain binary layer."""
    info = inspect(known_model())
    assert info["binary_products"] == [
        {"layer": "bconv", "planes": 1, "encoding": "–", "filters": 16, "kernel": [3, 3, 8],
         "macs": 64 * 16 * 72}
    ]
    assert inspect(known_model(lce=False))["binary_products"] == []
    model = read_model(known_model())
    model.tensors[model.ops[1].outputs[0]].shape = (3, 8, 8, 16)  # three planes
    from tools.inspect import binary_products

    assert binary_products(model)[0]["planes"] == 3

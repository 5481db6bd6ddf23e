import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from pipeline.bench.targets.model import CorruptModel, inspect_model  # noqa: E402


@pytest.mark.parametrize("kind", ["float", "int8", "binary"])
def test_kind_and_size_are_read_from_the_flatbuffer(kind):
    path = tiny_models.models()[kind]
    info = inspect_model(path)
    assert info.kind == kind
    assert info.size_bytes == path.stat().st_size
    assert info.n_ops >= 3
    assert ("LceBconv2d" in info.custom_ops) == (kind == "binary")
    assert info.binarizes == (kind == "binary")  # the float and int8 nets have no SIGN
    assert info.output_step is None  # float outputs, or int8 ones (compared in steps)


def test_output_step_of_a_dequantized_int8_output():
    from pipeline.tflite.reader import read_model

    path = tiny_models.models()["int8-float-io"]
    info = inspect_model(path)
    model = read_model(path.read_bytes())
    dequantize = model.producer(model.outputs[0])
    assert info.kind == "int8" and dequantize.type == "DEQUANTIZE"
    assert info.output_step == model.tensors[dequantize.inputs[0]].scale > 0


def test_not_a_tflite_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"this is not a model at all")
    with pytest.raises(CorruptModel, match="not a .tflite file"):
        inspect_model(bad)


def test_truncated_model_is_caught_before_any_runtime_sees_it(tmp_path):
    data = tiny_models.models()["float"].read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModel, match="corrupt or truncated"):
        inspect_model(cut)


def test_missing_file(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        inspect_model(tmp_path / "nope.tflite")

"""What a .tflite file is, checked before any runtime touches it.

TFLite's Python interpreter trusts its input: a truncated or damaged flatbuffer can crash
the process instead of raising. So the bench reads the whole flatbuffer first with
bitlite's reader (pipeline.tflite.reader), which turns damage into one clear message, and
takes from it what kind of model this is: ``binary`` (Larq Compute Engine custom ops),
``packed`` (k-bit weights behind bitlite's ``BitliteDecodeWeights``), ``int8`` (int8
weights) or ``float``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import CorruptFileError, UsageError
from pipeline.tflite.reader import ModelFormatError, TFLiteModel, read_model


class CorruptModel(CorruptFileError):
    """The file is not a readable TFLite flatbuffer (exit 2, as tools.inspect)."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size_bytes: int
    kind: str  # "binary" | "packed" | "int8" | "float"
    custom_ops: tuple[str, ...]
    n_ops: int
    binarizes: bool = False  # takes the sign of float values (LCE ops or TFLite SIGN)
    # One quantization step of the first output when it is a dequantized int8 tensor:
    # int8 kernels on different CPUs may round one requantization differently.
    output_step: float | None = None

    @property
    def needs_custom_ops(self) -> bool:
        """LCE's or bitlite's ops: only bitlite_runtime (or LCE, for LCE ops) runs it."""
        return bool(self.custom_ops)


def inspect_model(path: Path) -> ModelInfo:
    """Read and check a .tflite file; raise CorruptModel with one line if it is damaged."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model {path} does not exist")
    try:
        model = read_model(path.read_bytes())
    except ModelFormatError as err:
        raise CorruptModel(f"{path}: {err}") from None
    custom = tuple(model.custom_ops())
    if model.lce_ops():
        kind = "binary"
    elif model.bitlite_ops():
        kind = "packed"
    elif any(t.dtype in ("int8", "uint8") and t.data for t in model.tensors):
        kind = "int8"
    else:
        kind = "float"
    binarizes = bool(model.lce_ops()) or "SIGN" in model.op_counts()
    return ModelInfo(path, model.size_bytes, kind, custom, len(model.ops), binarizes,
                     _output_step(model))


def _output_step(model: TFLiteModel) -> float | None:
    """The scale of the int8 tensor a float first output is dequantized from, if any."""
    if not model.outputs or model.tensors[model.outputs[0]].dtype != "float32":
        return None
    op = model.producer(model.outputs[0])
    if op is None or op.type != "DEQUANTIZE" or not op.inputs:
        return None
    source = model.tensors[op.inputs[0]]
    return source.scale if source.dtype in ("int8", "uint8") else None

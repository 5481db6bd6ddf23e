"""bitlite runtime: Larq Compute Engine's binary ops as a TFLite delegate, for any TFLite.

LCE publishes no Arm build, and stock TFLite fails on its custom ops ("unresolved custom
op: LceQuantize"). This package compiles our own kernels for LceQuantize, LceDequantize,
LceBconv2d and LceBMaxPool2d (AArch64 NEON, x86-64 AVX-512 VPOPCNTDQ / AVX2 chosen at run
time, and a plain C++ oracle), plus bitlite's own BitliteDecodeWeights (weights stored as
k-bit codes, decoded once), into a TFLite delegate that uses only TFLite's public C
structs. It runs inside whichever TFLite is installed — LiteRT (ai-edge-litert),
tflite-runtime or TensorFlow's tf.lite — and imports only numpy and that runtime.

    from bitlite_runtime import Interpreter
    y = Interpreter("model.tflite", num_threads=4).predict(x)

or, with an interpreter of your own: ``experimental_delegates=[bitlite_runtime.delegate()]``.
"""

from bitlite_runtime.delegate import delegate, probe
from bitlite_runtime.hosts import HOSTS, NoHostError, backend
from bitlite_runtime.interpreter import Interpreter
from bitlite_runtime.library import (
    KERNELS,
    RuntimeModelError,
    available_kernels,
    check_options,
    decode_count,
    kernel_name,
    library_path,
    load_library,
)
from bitlite_runtime.model_check import check_model

__all__ = [
    "HOSTS",
    "KERNELS",
    "Interpreter",
    "NoHostError",
    "RuntimeModelError",
    "available_kernels",
    "backend",
    "check_model",
    "check_options",
    "decode_count",
    "delegate",
    "kernel_name",
    "library_path",
    "load_library",
    "probe",
]

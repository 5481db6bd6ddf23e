"""bitlite runtime: Larq Compute Engine's binary ops for the stock tflite-runtime.

LCE publishes no Arm build, and stock TFLite fails on its custom ops ("unresolved custom
op: LceQuantize"). This package compiles our own kernels for LceQuantize, LceDequantize,
LceBconv2d and LceBMaxPool2d (AArch64 NEON, x86-64 AVX-512 VPOPCNTDQ / AVX2 chosen at run
time, and a plain C++ oracle) and registers them with tflite-runtime 2.14, together with
bitlite's own BitliteDecodeWeights (weights stored as k-bit codes, decoded once). It imports
only numpy and tflite_runtime, never TensorFlow, so it installs on a Raspberry Pi.

    from bitlite_runtime import Interpreter
    y = Interpreter("model.tflite", num_threads=4).predict(x)
"""

from bitlite_runtime.interpreter import (
    Interpreter,
    RuntimeModelError,
    check_options,
    decode_count,
    kernel_name,
    library_path,
    load_library,
)

__all__ = [
    "Interpreter",
    "RuntimeModelError",
    "check_options",
    "decode_count",
    "kernel_name",
    "library_path",
    "load_library",
]

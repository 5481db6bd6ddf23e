"""Load libbitlite_lce.so, register its ops with tflite-runtime, run models."""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import numpy as np

# Set to a library path to load that build instead (e.g. an ASan build in tests).
LIBRARY_ENV = "BITLITE_LIBRARY"
# Selects the binary-GEMM kernel at prepare: auto (default), reference (the direct
# convolution oracle), generic, avx2, avx512, neon.
KERNEL_ENV = "BITLITE_KERNEL"


class RuntimeModelError(RuntimeError):
    """The model cannot run here: unsupported op options, malformed model, bad input."""


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def library_path(arch: str = "host") -> Path:
    """Path of libbitlite_lce.so for `arch`, building it first when needed.

    `pip install` puts the host build inside the package. In a source checkout the
    library is built on first use into runtime/build/<arch>/ (rebuilt when a C++ source
    changes), or ~/.cache/bitlite_runtime/<arch>/ when the tree is read-only.
    """
    from bitlite_runtime import build  # lazily: `python -m bitlite_runtime.build` stays clean

    if arch == "host" and os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    packaged = _package_dir() / "lib" / build.LIBRARY_NAME
    if arch == "host" and packaged.is_file():
        return packaged
    tree_build = _package_dir().parent / "build" / arch
    cache_build = Path.home() / ".cache" / "bitlite_runtime" / arch
    for out_dir in (tree_build, cache_build):
        library = out_dir / build.LIBRARY_NAME
        try:
            if build.is_stale(library):
                build.build_library(arch, out_dir)
            return library
        except PermissionError:
            continue
    raise build.BuildError(f"no writable folder to build {build.LIBRARY_NAME} in")


@cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.bitlite_register.argtypes = [ctypes.c_void_p]
    lib.bitlite_register.restype = ctypes.c_int
    lib.bitlite_last_error.restype = ctypes.c_char_p
    lib.bitlite_kernel_name.restype = ctypes.c_char_p
    lib.bitlite_check_options.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.c_char_p, ctypes.c_size_t]
    lib.bitlite_check_options.restype = ctypes.c_int
    lib.bitlite_decode_count.restype = ctypes.c_long
    return lib


def load_library() -> ctypes.CDLL:
    """The host library, loaded once per path."""
    return _load(str(library_path("host")))


def kernel_name() -> str:
    """The binary-GEMM kernel the next prepared model will use: 'avx512', 'avx2', 'neon',
    'generic' or 'reference' (BITLITE_KERNEL overrides the CPU's best)."""
    return load_library().bitlite_kernel_name().decode()


def check_options(op: str, options: bytes) -> str:
    """Validate a custom-options buffer as prepare does: '' if valid, else the message."""
    codes = {"LceBconv2d": 0, "LceBMaxPool2d": 1, "BitliteDecodeWeights": 2}
    if op not in codes:
        raise ValueError(f"op must be one of {sorted(codes)}")
    err = ctypes.create_string_buffer(512)
    load_library().bitlite_check_options(codes[op], options, len(options), err, len(err))
    return err.value.decode()


def decode_count() -> int:
    """How many times BitliteDecodeWeights has decoded a weight tensor in this process
    (once per op per prepare: the decoded weights persist across invokes)."""
    return int(load_library().bitlite_decode_count())


def _registerer(lib: ctypes.CDLL):
    def register(resolver_address: int) -> None:
        if lib.bitlite_register(ctypes.c_void_p(resolver_address)) != 0:
            raise RuntimeModelError(lib.bitlite_last_error().decode())

    return register


class Interpreter:
    """A tflite-runtime interpreter with LCE's ops and BitliteDecodeWeights registered.

    Args:
        model: path to a .tflite file, or its bytes.
        num_threads: threads for TFLite's builtin ops and for our binary convolutions.
        xnnpack: let tflite-runtime apply its default XNNPACK delegate (float ops with
            constant weights). False runs TFLite's builtin kernels only: weights decoded
            by BitliteDecodeWeights are not constant, so their consumers always run
            there, and comparing such a file with its int8 twin bit for bit needs both on
            the same kernels.
    """

    def __init__(
        self, model: str | os.PathLike | bytes, num_threads: int = 1, xnnpack: bool = True
    ):
        from tflite_runtime.interpreter import InterpreterWithCustomOps, OpResolverType

        is_bytes = isinstance(model, (bytes, bytearray))
        content = bytes(model) if is_bytes else Path(model).read_bytes()
        lib = load_library()
        try:
            self._interpreter = InterpreterWithCustomOps(
                model_content=content,
                custom_op_registerers=[_registerer(lib)],
                num_threads=num_threads,
                experimental_op_resolver_type=(
                    OpResolverType.AUTO
                    if xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                ),
            )
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise RuntimeModelError(str(e).strip()) from None
        self.num_threads = num_threads

    @property
    def input_details(self) -> list[dict]:
        return self._interpreter.get_input_details()

    @property
    def output_details(self) -> list[dict]:
        return self._interpreter.get_output_details()

    @property
    def output_names(self) -> list[str]:
        """One name per output, in output order: the signature's output key when the
        model has a signature (Keras layer names), else the tensor name."""
        by_index = {}
        for signature in self._interpreter._get_full_signature_list().values():
            by_index.update({index: name for name, index in signature["outputs"].items()})
        return [by_index.get(d["index"], d["name"]) for d in self.output_details]

    def tensor(self, name: str) -> np.ndarray:
        """A tensor's current value by name: after an invoke, persistent ones (weights
        decoded by BitliteDecodeWeights or DEQUANTIZE) hold what the kernels used."""
        for detail in self._interpreter.get_tensor_details():
            if detail["name"] == name:
                return self._interpreter.get_tensor(detail["index"])
        raise KeyError(name)

    def _to_input(self, x: np.ndarray, detail: dict) -> np.ndarray:
        dtype = detail["dtype"]
        scale, zero_point = detail["quantization"]
        if np.issubdtype(x.dtype, np.floating) and dtype == np.int8 and scale > 0:
            q = np.round(x / scale) + zero_point  # float input to an int8 model
            return np.clip(q, -128, 127).astype(np.int8)
        return x.astype(dtype, copy=False)

    def invoke(self, x: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """One invoke with inputs matching the model's input shapes; all outputs.

        `x` is one array, or a list with one array per model input.
        """
        xs = x if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.input_details):
            raise RuntimeModelError(f"model has {len(self.input_details)} inputs, got {len(xs)}")
        for xi, detail in zip(xs, self.input_details, strict=True):
            self._interpreter.set_tensor(detail["index"], self._to_input(np.asarray(xi), detail))
        try:
            self._interpreter.invoke()
        except RuntimeError as e:
            raise RuntimeModelError(str(e).strip()) from None
        return [self._interpreter.get_tensor(d["index"]) for d in self.output_details]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run a batch through the model; returns the first output, batch first.

        A model converted with batch size 1 is run sample by sample. Outputs keep the
        model's dtype (int8 outputs are not dequantized).
        """
        x = np.asarray(x)
        if len(self.input_details) != 1:
            raise RuntimeModelError("predict() supports single-input models; use invoke()")
        shape = tuple(self.input_details[0]["shape"])
        if x.shape[1:] != shape[1:]:
            raise RuntimeModelError(f"input shape {x.shape} does not match the model's {shape}")
        if shape[0] == x.shape[0]:
            return self.invoke(x)[0]
        if shape[0] != 1:
            raise RuntimeModelError(f"batch {x.shape[0]} does not match the model's {shape[0]}")
        return np.concatenate([self.invoke(x[i : i + 1])[0] for i in range(x.shape[0])])

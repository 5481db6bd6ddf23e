"""Find, build and load bitlite's delegate library (libbitlite_delegate.so)."""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

# Set to a library path to load that build instead (e.g. an ASan build in tests).
LIBRARY_ENV = "BITLITE_LIBRARY"
# Selects the binary-GEMM kernel at prepare when the delegate has no `kernel` option:
# auto (default), reference (the direct convolution oracle), generic, avx2, avx512, neon.
KERNEL_ENV = "BITLITE_KERNEL"


class RuntimeModelError(RuntimeError):
    """The model cannot run here: unsupported op options, malformed model, bad input."""


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def library_path(arch: str = "host") -> Path:
    """Path of the delegate library for `arch`, building it first when needed.

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
    # The same path as the host's load_delegate opens: one copy of the library (and of
    # its decode counter) per process.
    lib = ctypes.CDLL(path)
    lib.BitliteKernelName.argtypes = [ctypes.c_char_p]
    lib.BitliteKernelName.restype = ctypes.c_char_p
    lib.BitliteDelegateProbe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.BitliteDelegateProbe.restype = ctypes.c_size_t
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
    return load_library().BitliteKernelName(None).decode()


KERNELS = ("avx512", "avx2", "neon", "generic", "reference")


def available_kernels() -> list[str]:
    """The binary-GEMM kernels this build runs on this CPU (any of them can be forced
    with BITLITE_KERNEL or delegate(kernel=...)); the others are refused at creation."""
    lib = load_library()
    return [k for k in KERNELS if lib.BitliteKernelName(k.encode()).decode() == k]


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

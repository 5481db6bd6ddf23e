"""bitlite's delegate for interpreters you build yourself, and what it saw (its probe).

    from ai_edge_litert.interpreter import Interpreter
    import bitlite_runtime
    it = Interpreter("model.tflite", num_threads=4,
                     experimental_delegates=[bitlite_runtime.delegate(num_threads=4)])

Pass it in ``experimental_delegates`` (applied before XNNPACK's default delegate, which
would otherwise meet the LCE ops first and be dropped). Keep the delegate object alive
as long as the interpreter: the interpreter holds a reference to it.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

from bitlite_runtime import hosts
from bitlite_runtime.library import RuntimeModelError, library_path, load_library


def delegate(num_threads: int | None = None, kernel: str | None = None,
             host: str | None = None) -> Any:
    """A new bitlite delegate, loaded through the host runtime's ``load_delegate``.

    Args:
        num_threads: threads for binary convolutions (None or 0: the interpreter's).
        kernel: binary-GEMM kernel ('auto', 'reference', 'generic', 'avx2', 'avx512',
            'neon'); None: $BITLITE_KERNEL at prepare, else the CPU's best.
        host: 'litert', 'tflite_runtime' or 'tensorflow' (default: see hosts.resolve);
            the delegate object is that runtime's, for its interpreters.
    """
    options = {}
    if num_threads is not None:
        options["num_threads"] = str(int(num_threads))
    if kernel is not None:
        options["kernel"] = kernel
    runtime = hosts.resolve(host)
    try:
        return runtime.load_delegate(str(library_path("host")), options)
    except ValueError as err:  # the host's wording, with our reason on its last line
        raise RuntimeModelError(str(err).strip()) from None


def probe(delegate_object: Any) -> dict:
    """What the delegate saw in its last Prepare, as JSON from the library: the host's
    context, every node it claimed and the kernels the host made of them (see
    BitliteDelegateProbe in bitlite_delegate.h)."""
    pointer = delegate_object._get_native_delegate_pointer()
    lib = load_library()
    size = lib.BitliteDelegateProbe(ctypes.c_void_p(pointer), None, 0)
    buffer = ctypes.create_string_buffer(size)
    lib.BitliteDelegateProbe(ctypes.c_void_p(pointer), buffer, size)
    return json.loads(buffer.value.decode())

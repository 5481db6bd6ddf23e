"""bitlite_runtime.Interpreter: a host TFLite interpreter with bitlite's delegate applied."""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from bitlite_runtime import hosts
from bitlite_runtime.delegate import delegate
from bitlite_runtime.library import RuntimeModelError
from bitlite_runtime.model_check import check_model

# Interpreters still open; closed at exit while modules are intact: a host's delegate
# freed during module teardown otherwise prints a traceback (LiteRT's Delegate.__del__
# calls ctypes after the interpreter cleared it).
_OPEN: weakref.WeakSet[Interpreter] = weakref.WeakSet()


class Interpreter:
    """The host runtime's interpreter with bitlite's delegate for LCE's ops and
    BitliteDecodeWeights; every other op runs on the host (XNNPACK where it applies).

    Args:
        model: path to a .tflite file, or its bytes.
        num_threads: threads for the host's ops and for our binary convolutions.
        xnnpack: let the host apply its default XNNPACK delegate (float ops with
            constant weights). False runs the host's builtin kernels only: weights
            decoded by BitliteDecodeWeights are not constant, so their consumers always
            run there, and comparing such a file with its int8 twin bit for bit needs
            both on the same kernels.
        host: 'litert', 'tflite_runtime' or 'tensorflow'; default $BITLITE_HOST, else
            the first installed (see bitlite_runtime.hosts).
        kernel: the binary-GEMM kernel; default $BITLITE_KERNEL, else the CPU's best.

    A model the delegate cannot run (an unsupported option, a malformed tensor) raises
    RuntimeModelError here, with bitlite's message, never at invoke; so does a file
    whose structure would crash the host (see bitlite_runtime.model_check), before the
    host reads it.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes,
        num_threads: int = 1,
        xnnpack: bool = True,
        host: str | None = None,
        kernel: str | None = None,
    ):
        runtime = hosts.resolve(host)
        content = bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        # Before the host parses it: faults that make hosts crash instead of refusing.
        malformed = check_model(content)
        if malformed:
            raise RuntimeModelError(malformed)
        # Ours first: experimental_delegates are applied before the host's lazy XNNPACK
        # delegate, which would meet the LCE ops as unresolved and be dropped.
        self.delegate = delegate(num_threads=num_threads, kernel=kernel, host=runtime.name)
        kwargs: dict[str, Any] = dict(
            model_content=content, num_threads=num_threads,
            experimental_delegates=[self.delegate],
        )
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                runtime.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self._interpreter = runtime.interpreter_class(**kwargs)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise RuntimeModelError(str(e).strip()) from None
        self.num_threads = num_threads
        self.host = runtime.name
        # Read once: the host builds these dicts on every call (about 10 us per invoke,
        # a third of a LeNet-5 inference), and the wrapper never resizes a tensor.
        self._input_details = self._interpreter.get_input_details()
        self._output_details = self._interpreter.get_output_details()
        self._output_indices = [d["index"] for d in self._output_details]
        first = self._input_details[0]["shape"] if self._input_details else ()
        self._input_shape = tuple(int(n) for n in first)  # predict's, as Python ints
        _OPEN.add(self)

    def close(self) -> None:
        """Free the host interpreter, then the delegate it used (it must outlive it)."""
        self._interpreter = None
        self.delegate = None

    @property
    def input_details(self) -> list[dict]:
        return [dict(d) for d in self._input_details]

    @property
    def output_details(self) -> list[dict]:
        return [dict(d) for d in self._output_details]

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
        if x.dtype == dtype:  # the usual case, without numpy's slower type tests
            return x
        scale, zero_point = detail["quantization"]
        if np.issubdtype(x.dtype, np.floating) and dtype == np.int8 and scale > 0:
            q = np.round(x / scale) + zero_point  # float input to an int8 model
            return np.clip(q, -128, 127).astype(np.int8)
        return x.astype(dtype, copy=False)

    def invoke(self, x: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """One invoke with inputs matching the model's input shapes; all outputs.

        `x` is one array, or a list with one array per model input.
        """
        if self._interpreter is None:
            raise RuntimeModelError("this interpreter is closed")
        xs = x if isinstance(x, (list, tuple)) else [x]
        details = self._input_details
        if len(xs) != len(details):
            raise RuntimeModelError(f"model has {len(details)} inputs, got {len(xs)}")
        for xi, detail in zip(xs, details, strict=True):
            self._interpreter.set_tensor(detail["index"], self._to_input(np.asarray(xi), detail))
        try:
            self._interpreter.invoke()
        except RuntimeError as e:
            raise RuntimeModelError(str(e).strip()) from None
        return [self._interpreter.get_tensor(i) for i in self._output_indices]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run a batch through the model; returns the first output, batch first.

        A model converted with batch size 1 is run sample by sample. Outputs keep the
        model's dtype (int8 outputs are not dequantized).
        """
        x = np.asarray(x)
        if len(self._input_details) != 1:
            raise RuntimeModelError("predict() supports single-input models; use invoke()")
        shape = self._input_shape
        if x.shape[1:] != shape[1:]:
            raise RuntimeModelError(f"input shape {x.shape} does not match the model's {shape}")
        if shape[0] == x.shape[0]:
            return self.invoke(x)[0]
        if shape[0] != 1:
            raise RuntimeModelError(f"batch {x.shape[0]} does not match the model's {shape[0]}")
        return np.concatenate([self.invoke(x[i : i + 1])[0] for i in range(x.shape[0])])


@atexit.register
def _close_open() -> None:
    for interpreter in list(_OPEN):
        interpreter.close()

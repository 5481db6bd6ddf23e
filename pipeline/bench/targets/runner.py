"""The on-device benchmark runner: time a .tflite model's inferences and save its output.

This one file is copied to whatever runs the model — this machine, an emulated ARM
sysroot, a Raspberry Pi — so it needs only numpy and a TFLite runtime (LiteRT's
``ai_edge_litert`` where it has wheels, else ``tflite_runtime``; plus
``bitlite_runtime`` for binary models, or Larq Compute Engine's interpreter for
``--engine lce``), runs on Python 3.9+, and imports nothing from bitlite.

Each timed inference is "set input, invoke, read output" — what an application pays per
call. The result is one line on stdout, ``BITLITE_RESULT {json}``; a failure the user can
act on is one line ``BITLITE_ERROR message`` and exit status 3. With ``--markers`` each
timed inference is bracketed by close(ICOUNT_BEGIN) / close(ICOUNT_END), the marker calls
the icount QEMU plugin counts guest instructions between (see icount.c).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time

import numpy as np

ICOUNT_BEGIN = 0x6B17BE01
ICOUNT_END = 0x6B17BE02
TFLITE_IDENTIFIER = b"TFL3"
ERROR_EXIT = 3


class RunnerError(Exception):
    """A problem with the model or input, reported as one line."""


def pattern_input(shape: tuple[int, ...]) -> np.ndarray:
    """A fixed input in [-1, 1] that every platform computes bit for bit the same.

    Only integer arithmetic and one correctly rounded division: no RNG stream or libm
    call whose result could differ between numpy versions or CPU architectures.
    """
    n = int(np.prod(shape))
    values = ((np.arange(n, dtype=np.int64) * 37) % 201).astype(np.float64) / 100.0 - 1.0
    return values.astype(np.float32).reshape(shape)


def check_flatbuffer(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise RunnerError(f"{os.path.basename(path)} is not a TFLite model (no TFL3 identifier)")


def load_input(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise RunnerError(f"cannot read input {os.path.basename(path)}: {err}") from None


def fit_input(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Accept the model's exact input shape, or that shape without its batch of 1."""
    if tuple(x.shape) == tuple(shape):
        return x
    if len(shape) >= 1 and shape[0] == 1 and tuple(x.shape) == tuple(shape[1:]):
        return x[None]
    raise RunnerError(
        f"input shape {tuple(x.shape)} does not match the model's input {tuple(shape)}"
    )


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float input -> the model's integer input type, with the model's own parameters."""
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    if x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


# Stock TFLite runtimes, preferred first. tflite-runtime 2.14's Python interpreter applies
# no XNNPACK to int8 graphs, so int8 timed there is not what users get: LiteRT first.
STOCK_RUNTIMES = (("ai_edge_litert.interpreter", "LiteRT"), ("tflite_runtime.interpreter",
                                                             "tflite-runtime"))  # fmt: skip


def stock_interpreter() -> tuple[type, str]:
    """The first installed stock TFLite interpreter class and its label (with version)."""
    import importlib

    for module, label in STOCK_RUNTIMES:
        try:
            interpreter = importlib.import_module(module).Interpreter
        except ImportError:
            continue
        return interpreter, f"{label} {_version(module.split('.')[0])}"
    raise RunnerError("no TFLite runtime is installed (pip install ai-edge-litert)")


def _version(package: str) -> str:
    from importlib import metadata

    names = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
    try:
        return metadata.version(names.get(package, package))
    except metadata.PackageNotFoundError:
        return "?"


class TfliteEngine:
    """Stock TFLite (LiteRT, else tflite-runtime); it applies XNNPACK itself where it can."""

    def __init__(self, path: str, threads: int) -> None:
        Interpreter, runtime = stock_interpreter()  # noqa: N806  (a class)
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0]
            raise RunnerError(f"TFLite cannot load the model: {first}") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise RunnerError(f"the model has {len(inputs)} inputs; the bench feeds one")
        self.input = inputs[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape = tuple(int(d) for d in self.input["shape"])
        self.dtype = np.dtype(self.input["dtype"])
        self.scale, self.zero_point = self.input["quantization"]
        ops = [op["op_name"] for op in self.interpreter._get_ops_details()]
        delegated = "DELEGATE" in ops
        self.kernels = f"{runtime}: TFLite builtin kernels" + (
            " + XNNPACK delegate" if delegated else " (no delegate applied)"
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])


class BitliteEngine:
    """bitlite's own runtime: TFLite plus our LCE-op kernels."""

    def __init__(self, path: str, threads: int) -> None:
        try:
            import bitlite_runtime
        except ImportError:
            raise RunnerError("bitlite_runtime is not installed; binary models need it") from None
        try:
            self.interpreter = bitlite_runtime.Interpreter(path, num_threads=threads)
        except (ValueError, RuntimeError, OSError) as err:
            raise RunnerError(f"bitlite_runtime cannot load the model: {err}") from None
        detail = self.interpreter.input_details
        if len(detail) != 1:
            raise RunnerError(f"the model has {len(detail)} inputs; the bench feeds one")
        self.shape = tuple(int(d) for d in detail[0]["shape"])
        self.dtype = np.dtype(detail[0]["dtype"])
        self.scale, self.zero_point = detail[0]["quantization"]
        host = bitlite_runtime.backend()
        self.kernels = (
            f"bitlite delegate ({bitlite_runtime.kernel_name()} binary GEMM) in {host} "
            "+ XNNPACK for the other ops"
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.interpreter.predict(x))


class LceEngine:
    """Larq Compute Engine's own interpreter; on x86 it runs LCE's reference kernels."""

    def __init__(self, path: str, threads: int) -> None:
        try:
            from larq_compute_engine.tflite.python.interpreter import Interpreter
        except ImportError:
            raise RunnerError("larq_compute_engine is not installed here") from None
        with open(path, "rb") as f:
            model = f.read()
        try:
            self.interpreter = Interpreter(model, num_threads=threads)
        except (ValueError, RuntimeError) as err:
            raise RunnerError(f"LCE cannot load the model: {err}") from None
        self.shape, self.dtype, self.scale, self.zero_point = _input_signature(self.interpreter)
        arm = platform.machine().lower() in ("aarch64", "arm64")
        self.kernels = "LCE optimized kernels" if arm else "LCE x86 reference kernels"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.interpreter.predict(x))


def _input_signature(interpreter) -> tuple:
    """Shape, dtype and quantization of input 0, from LCE's interpreter attributes."""
    shapes = interpreter.input_shapes
    if len(shapes) != 1:
        raise RunnerError(f"the model has {len(shapes)} inputs; the bench feeds one")
    dtype = np.dtype(interpreter.input_types[0])
    scales = getattr(interpreter, "input_scales", None) or [None]
    zeros = getattr(interpreter, "input_zero_points", None) or [None]
    return tuple(int(d) for d in shapes[0]), dtype, scales[0] or 0.0, zeros[0] or 0


ENGINES = {"tflite": TfliteEngine, "bitlite": BitliteEngine, "lce": LceEngine}


def marker(code: int, enabled: bool) -> None:
    if enabled:
        # EBADF is the point: the call exists only to be seen by the plugin.
        with contextlib.suppress(OSError):
            os.close(code)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "Processor"):
        for line in info.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.machine()


def run(args: argparse.Namespace) -> dict:
    check_flatbuffer(args.model)
    engine = ENGINES[args.engine](args.model, args.threads)
    x = load_input(args.input) if args.input else pattern_input(engine.shape)
    x = fit_input(x, engine.shape)
    x = quantize(x, engine.dtype, engine.scale, engine.zero_point)
    try:
        y = engine.predict(x)
    except (ValueError, RuntimeError) as err:
        raise RunnerError(f"inference failed: {err}") from None
    for _ in range(args.warmup):
        engine.predict(x)
    latencies = []
    for _ in range(args.runs):
        marker(ICOUNT_BEGIN, args.markers)
        start = time.perf_counter()
        engine.predict(x)
        latencies.append((time.perf_counter() - start) * 1e3)
        marker(ICOUNT_END, args.markers)
    if args.output:
        np.save(args.output, y)
    return {
        "latencies_ms": latencies,
        "kernels": engine.kernels,
        "engine": args.engine,
        "threads": args.threads,
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "input_shape": list(engine.shape),
        "input_dtype": engine.dtype.name,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--engine", choices=sorted(ENGINES), default="tflite")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--input", help=".npy input (float, in the model's [-1, 1] input range)")
    p.add_argument("--output", help="save the first inference's output here (.npy)")
    p.add_argument("--markers", action="store_true", help="emit icount marker calls")
    args = p.parse_args(argv)
    try:
        result = run(args)
    except RunnerError as err:
        print(f"BITLITE_ERROR {err}", flush=True)
        return ERROR_EXIT
    except FileNotFoundError as err:
        print(f"BITLITE_ERROR {err.filename} does not exist", flush=True)
        return ERROR_EXIT
    print("BITLITE_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

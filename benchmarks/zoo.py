"""larq-zoo's architectures through bitlite's export: the acceptance set for models from
elsewhere (issue 17).

    pip install --no-deps larq-zoo==2.4.0 zookeeper==1.4.0 "typeguard>=4,<5"
    python -m benchmarks.zoo [--size 224] [--models QuickNetSmall BiRealNet ...] [--out F]

Every architecture of ``larq_zoo.sota`` and ``larq_zoo.literature`` is built with random
weights (``weights=None``: pretrained weights cannot be downloaded here) and random
batch-norm statistics (untrained BN leaves exact ties at every sign), exported with
:func:`pipeline.export.export_model` and checked on 8 random inputs against Keras on LCE's
interpreter and on bitlite's runtime (max |output difference| relative to the largest
output). Size is compared with the smallest possible file: one bit per binary weight plus
every other weight as stored. Latency (``--latency``) is bitlite's delegate vs LCE's x86
interpreter (LCE's portable reference kernels: not a device figure), 1 thread, from one
interleaved run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.table import write_table

RESULTS = Path(__file__).parent / "results" / "zoo.md"


def architectures() -> dict[str, Any]:
    """Name -> builder for every model class larq-zoo exports (CamelCase names)."""
    import larq_zoo as lqz

    found = {}
    for module in (lqz.sota, lqz.literature):
        for name in dir(module):
            if name[0].isupper() and callable(getattr(module, name)):
                found[name] = getattr(module, name)
    return dict(sorted(found.items()))


def randomize_batch_norm(model: Any, seed: int = 0) -> None:
    """Random batch-norm statistics, as a trained model has. Untrained BN is the identity,
    so a binary layer's integer popcounts reach the next sign() unchanged and many are
    exactly 0, where float rounding in either runtime decides the sign: parity on such a
    model measures ties, not the export."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for w in layer.weights:
                low, high = (0.5, 2.0) if "variance" in w.name or "gamma" in w.name else (-0.3, 0.3)
                w.assign(rng.uniform(low, high, w.shape).astype(np.float32))


def smallest_bytes(report: dict[str, Any]) -> float:
    """One bit per binary weight, every other weight tensor as the file stores it."""
    total = 0.0
    for w in report["weight_tensors"]:
        binary = w["op"] == "LceBconv2d"
        total += w["count"] / 8 if binary else w["bytes"]
    return total


def latency_ms(flatbuffer: bytes, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per inference, bitlite (each kernel) and LCE interleaved."""
    import bitlite_runtime
    from larq_compute_engine.tflite.python.interpreter import Interpreter as Lce

    engines = {f"bitlite {k}": bitlite_runtime.Interpreter(flatbuffer, num_threads=1, kernel=k)
               for k in bitlite_runtime.available_kernels() if k in ("avx512", "avx2")}  # fmt: skip
    engines["LCE x86 reference"] = Lce(flatbuffer, num_threads=1)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(runs):
        for name, engine in engines.items():
            start = time.perf_counter()
            engine.predict(x)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def row(name: str, build: Any, size: int, latency_runs: int) -> dict[str, Any]:
    from pipeline.export import export_model

    model = build(input_shape=(size, size, 3), weights=None, num_classes=1000)
    randomize_batch_norm(model)
    with tempfile.TemporaryDirectory(prefix="bitlite-zoo-") as tmp:
        start = time.perf_counter()
        try:
            report = export_model(model, Path(tmp), interpreter=["lce", "bitlite"])
        except Exception as err:  # noqa: BLE001  (one row says why, the rest go on)
            line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            return {"model": name, "error": line[:200]}
        result = {
            "model": name,
            "converter": report["converter"],
            "fallbacks": len(report["conversion_failures"]),
            "mb": report["size_bytes"] / 1e6,
            "vs_smallest": report["size_bytes"] / smallest_bytes(report),
            "binary_macs": report["binary_mac_fraction"],
            "parity": {k: c.get("relative_diff") for k, c in report["parity"].items()},
            "ok": report["parity_ok"],
            "seconds": time.perf_counter() - start,
        }
        if latency_runs:
            x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
            result["ms"] = latency_ms((Path(tmp) / "model.tflite").read_bytes(), x, latency_runs)
    return result


def markdown(rows: list[dict[str, Any]], size: int) -> str:
    lines = [
        f"Input {size}×{size}×3, random weights, 8 random inputs in [-1, 1]; parity = max "
        "|output difference| / max |output| against Keras (goal ≤ 1e-3).", "",
        "| model | converter | MB | × smallest possible | binary MACs | rel. diff LCE | "
        "rel. diff bitlite | latency ms (1 thread) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | | | |")
            continue
        ms = ", ".join(f"{k} {v:.1f}" for k, v in r.get("ms", {}).items()) or "–"
        p = r["parity"]
        lines.append(
            f"| {r['model']} | {r['converter']}{' (fallback)' if r['fallbacks'] else ''} | "
            f"{r['mb']:.2f} | {r['vs_smallest']:.3f} | {r['binary_macs']:.1%} | "
            f"{_diff(p.get('lce'))} | {_diff(p.get('bitlite'))} | {ms} |"
        )
    return "\n".join(lines)


def _diff(value: float | None) -> str:
    return "cannot run" if value is None else f"{value:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", nargs="*", help="default: every architecture")
    parser.add_argument("--latency", type=int, default=0, metavar="RUNS",
                        help="also time each model this many interleaved runs")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help=f"e.g. {RESULTS}")
    args = parser.parse_args()
    found = architectures()
    unknown = sorted(set(args.models or []) - set(found))
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}; choose from {sorted(found)}")
    rows = []
    for name in args.models or found:
        print(f"{name} ...", flush=True)
        rows.append(row(name, found[name], args.size, args.latency))
        print(f"  {rows[-1]}", flush=True)
    body = markdown(rows, args.size)
    title = "larq-zoo architectures exported by bitlite"
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

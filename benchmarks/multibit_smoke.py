"""Smoke benchmark of the multi-bit, log, soft-weight-sharing and baseline methods:
LeNet-5 on an MNIST subset for a few epochs, one line per configuration.

    python -m benchmarks.multibit_smoke --train-samples 6000 --test-samples 2000 --epochs 3

Prints a markdown table (test accuracy after finalize — after the snap for
soft-weight-sharing — and Keras/LCE parity of the exported .tflite). A smoke check
that every method learns with its defaults, not a reproduction of the papers' numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.export.exporter import export_run
from pipeline.train.trainer import TrainConfig, train

CONFIGS: list[tuple[str, dict]] = [
    ("float", {}),
    ("int8-qat", {}),
    ("dorefa", {}),  # W1 A2 G6, float first/last layer
    ("dorefa", {"wbits": 4, "abits": 4, "gbits": 8}),
    ("log", {}),  # base 2, W4 A4
    ("log", {"base": "sqrt2"}),
    ("qnn", {}),  # W2 A2
    ("soft-weight-sharing", {}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-samples", type=int, default=6000)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--only", type=int, nargs="*", help="indices into CONFIGS (default: all)")
    args = p.parse_args()
    chosen = [CONFIGS[i] for i in args.only] if args.only else CONFIGS
    rows = []
    with tempfile.TemporaryDirectory(prefix="bitlite-bench-") as tmp:
        for i, (method, options) in enumerate(chosen):
            if method == "soft-weight-sharing":
                options = {**options, "n_train": args.train_samples}  # N in τ/N
            config = TrainConfig(method=method, method_options=options, epochs=args.epochs,
                                 train_samples=args.train_samples,
                                 test_samples=args.test_samples)  # fmt: skip
            start = time.perf_counter()
            run = train(config, out=Path(tmp) / f"{i}-{method}", progress=False)
            result = run.result()
            report = export_run(run, min_agreement=0.0)
            extra = ""
            if "sws_compression_ratio" in result:
                ratio = result["sws_compression_ratio"]
                extra = (f"{result['sws_distinct_values']} values, "
                         f"{result['sws_nonzero_fraction']:.1%} non-zero, "
                         f"{ratio:.0f}× (Han et al. format)" if ratio else "all zero")  # fmt: skip
            label = method + (
                " " + " ".join(f"{k}={v}" for k, v in options.items()) if options else ""
            )
            rows.append((label, run.config()["method"]["bits"], result["test_accuracy"],
                         report["argmax_agreement"], time.perf_counter() - start, extra))  # fmt: skip
            print(f"done {label}: {result['test_accuracy']:.4f}", flush=True)
    print(f"\nLeNet-5, MNIST {args.train_samples} train / {args.test_samples} test images, "
          f"{args.epochs} epochs, batch 64\n")  # fmt: skip
    print("| method | W/A/G bits | test accuracy | .tflite argmax agreement | wall s | notes |")
    print("|---|---|---|---|---|---|")
    for label, bits, acc, agree, secs, extra in rows:
        b = f"{bits['w']}/{bits['a']}/{bits['g']}"
        print(f"| {label} | {b} | {acc:.4f} | {agree:.4f} | {secs:.0f} | {extra} |")


if __name__ == "__main__":
    main()

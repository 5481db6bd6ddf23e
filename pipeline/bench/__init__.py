"""Stage 4, bench: exported ``.tflite`` files in, latency and correctness on a target out.

In: a model file or a run directory. Out: a printed table and JSON (latency, or guest
instructions under emulation, size, what ran, outputs checked against the host).

- :mod:`~pipeline.bench.cli` — ``python -m pipeline.bench``
- :mod:`~pipeline.bench.targets` — one plugin per place a model runs: host, qemu-aarch64,
  qemu-armhf, ssh, adb
"""

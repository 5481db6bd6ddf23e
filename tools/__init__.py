"""The tools stage: run directory in, run directory out (INQ, progressive quantization, inspect)."""

import pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)

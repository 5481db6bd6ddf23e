"""bitlite: quantization-aware training to tiny on-device models.

Importing this package selects Keras 2 (``tf-keras``) for TensorFlow: larq, Larq Compute
Engine and the TF Model Optimization Toolkit are built on Keras 2, and TensorFlow 2.16
reads ``TF_USE_LEGACY_KERAS`` once, at its own import. So this must run before anything
imports TensorFlow — every bitlite module imports ``pipeline`` first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides our own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

from pipeline import py312  # noqa: E402  (after the environment above; imports no TF)

py312.install()

"""Autograph leaves Keras 2 and larq alone, as TensorFlow means it to.

TensorFlow's autograph rewrites the Python source of every function a ``tf.function``
reaches, unless its module is on the do-not-convert list. TensorFlow 2.16 lists ``keras``
(framework code, written for graph mode), but not ``tf_keras`` — the same Keras 2 under
the name TF 2.16 gives it — nor ``larq``. So each new process converts Keras 2's whole
training loop and larq's layers on its first ``fit``: about 12 s of CPU per process here
(a 4-cell grid: 29.0 → 11.7 s CPU, identical accuracies), paid again by every worker of a
parallel grid. Neither library relies on conversion: Python control flow on tensors
would raise at trace time, never change results silently.
"""

from __future__ import annotations

LIBRARIES = ("tf_keras", "larq")


def skip_libraries() -> None:
    """Add ``DoNotConvert`` rules for :data:`LIBRARIES` (once per process)."""
    from tensorflow.python.autograph.core import config

    have = {rule._prefix for rule in config.CONVERSION_RULES}  # noqa: SLF001
    missing = tuple(config.DoNotConvert(name) for name in LIBRARIES if name not in have)
    config.CONVERSION_RULES = (*missing, *config.CONVERSION_RULES)

"""Loading saved Keras models with every bitlite custom object registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_keras_model(path: Path) -> Any:
    import larq  # noqa: F401  (registers larq's layers and quantizers)
    import tensorflow as tf

    import pipeline.methods  # noqa: F401  (registers bitlite's quantizers and layers)
    from pipeline.methods.baseline import load_scope

    with load_scope(path):  # TF-MOT's int8-qat wrappers are not registered globally
        return tf.keras.models.load_model(path)

"""Loading saved Keras models with every bitlite custom object registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import CorruptFileError


def load_keras_model(path: Path) -> Any:
    import larq  # noqa: F401  (registers larq's layers and quantizers)
    import tensorflow as tf

    import pipeline.methods  # noqa: F401  (registers bitlite's quantizers and layers)
    from pipeline.methods.baseline import load_scope

    try:
        with load_scope(path):  # TF-MOT's int8-qat wrappers are not registered globally
            return tf.keras.models.load_model(path)
    except (FileNotFoundError, PermissionError) as err:
        raise CorruptFileError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001  (Keras and h5py raise assorted errors on bad files)
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CorruptFileError(
            f"{path} is not a readable Keras model ({type(err).__name__}: {first}); "
            "re-train the run or restore the file"
        ) from None

"""Loading saved Keras models with every bitlite custom object registered."""

from __future__ import annotations

import contextlib
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


def load_foreign_model(path: Path) -> Any:
    """A Keras model saved elsewhere (.keras, .h5 or a SavedModel folder), with larq's,
    bitlite's and — where installed — larq-zoo's custom objects known. Anything that does
    not load is one clear line, not a traceback."""
    from pipeline.errors import BitliteError, UsageError

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise UsageError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
    with contextlib.suppress(ImportError):  # larq-zoo registers its own custom objects
        import larq_zoo  # noqa: F401
    try:
        model = load_keras_model(path)
    except BitliteError as err:
        raise UsageError(
            f"{path} is not a Keras model this Python can load ({err}); a model built by "
            "your own code exports through pipeline.export.export_model(model, out)"
        ) from None
    if not hasattr(model, "input_shape"):
        raise UsageError(f"{path} loads, but not as a Keras model with one input")
    return model

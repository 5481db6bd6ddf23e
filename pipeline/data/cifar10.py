"""CIFAR-10 from a local ``cifar-10-batches-py`` directory or the keras loader.

The directory format is the one the dataset's authors publish: pickled dicts
``{b"data": uint8 (N, 3072) in CHW order, b"labels": [int]}`` in ``data_batch_1..5`` and
``test_batch``, plus ``batches.meta`` with ``b"label_names"``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pipeline.data import register
from pipeline.data.base import Dataset
from pipeline.errors import ChecksumError, DatasetUnavailableError

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
KERAS_DIR = Path.home() / ".keras" / "datasets" / "cifar-10-batches-py"


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise ChecksumError(f"{path} is not a CIFAR-10 batch file ({err})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ChecksumError(f"{path} has data of shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_batches_dir(directory: Path) -> Dataset:
    train = sorted(directory.glob("data_batch_*"))
    test = directory / "test_batch"
    if not train or not test.is_file():
        raise DatasetUnavailableError(f"{directory} lacks data_batch_* / test_batch files")
    parts = [_read_batch(p) for p in train]
    x_te, y_te = _read_batch(test)
    labels = LABELS
    meta = directory / "batches.meta"
    if meta.is_file():
        with meta.open("rb") as f:
            labels = [n.decode() for n in pickle.load(f, encoding="bytes")[b"label_names"]]
    return Dataset(
        "cifar10",
        np.concatenate([x for x, _ in parts]),
        np.concatenate([y for _, y in parts]),
        x_te,
        y_te,
        labels=labels,
        source=str(directory),
    )


@register("cifar10")
def load_cifar10(data_dir: Path | None = None) -> Dataset:
    if data_dir is not None:  # the user named a directory: never fall back to a download
        if not Path(data_dir).is_dir():
            raise DatasetUnavailableError(
                f"--data-dir {data_dir} is not a directory; pass the unpacked "
                "cifar-10-batches-py directory"
            )
        return read_batches_dir(Path(data_dir))
    if KERAS_DIR.is_dir():
        return read_batches_dir(KERAS_DIR)
    import tensorflow as tf

    try:
        (x_tr, y_tr), (x_te, y_te) = tf.keras.datasets.cifar10.load_data()
    except Exception as err:  # any download failure means: not available offline
        raise DatasetUnavailableError(
            f"cifar10 is not on this machine and could not be downloaded ({type(err).__name__}). "
            "Download cifar-10-python.tar.gz from the authors' page, unpack it and pass "
            "--data-dir .../cifar-10-batches-py."
        ) from None
    return Dataset("cifar10", x_tr, y_tr, x_te, y_te, labels=LABELS, source="keras download")

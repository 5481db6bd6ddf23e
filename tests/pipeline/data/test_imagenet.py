"""ImageNet through tfds' imagenet2012 builder, from tiny archives in the real layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

from pipeline import data  # noqa: E402
from pipeline.data import imagenet  # noqa: E402
from pipeline.errors import DatasetUnavailableError  # noqa: E402

SYNSETS = ["n01440764", "n01443537"]  # the first two of the 1,000 classes
WHITE, RED = (255, 255, 255), (200, 30, 30)


def jpeg(h: int, w: int, color=WHITE, border=None) -> bytes:
    from PIL import Image

    img = np.zeros((h, w, 3), np.uint8) + np.array(color, np.uint8)
    if border is not None:  # a frame outside the central 224/256 square
        side = int(imagenet.CROP_FRACTION * min(h, w))
        top, left = (h - side + 1) // 2, (w - side + 1) // 2
        frame = np.zeros_like(img) + np.array(border, np.uint8)
        frame[top - 3 : top + side + 3, left - 3 : left + side + 3] = color  # a margin for JPEG
        img = frame
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_archives(manual: Path) -> None:
    """ILSVRC2012_img_train.tar holds one tar per synset; the val tar holds the JPEGs."""
    manual.mkdir(parents=True)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for k, synset in enumerate(SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                for i in range(3):
                    add(tar, f"{synset}_{i + 1}.JPEG", jpeg(60 + 20 * i, 90 - 10 * k))
            add(outer, f"{synset}.tar", inner.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(4):
            add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", jpeg(100, 160, WHITE, border=RED))


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tfds")
    write_archives(imagenet.manual_dir(root))
    return root


def test_missing_archives_say_where_to_put_them(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="ILSVRC2012_img_train.tar"):
        data.load_dataset("imagenet2012", tmp_path)


def test_prepared_from_the_manual_archives(imagenet_dir):
    ds = data.load_dataset("imagenet2012", imagenet_dir)
    assert (ds.train_size, ds.test_size) == (6, 4)
    assert ds.num_classes == 1000 and ds.labels[:2] == SYNSETS
    assert ds.input_shape == (224, 224, 3)
    assert ds.subset(4, 2).train_size == 4 and ds.subset(4, 2).test_size == 2
    x, y = next(iter(ds.train_pipeline(batch_size=6, seed=0)))
    assert x.shape == (6, 224, 224, 3) and sorted(y.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    assert float(x.numpy().min()) >= -1.0 and float(x.numpy().max()) <= 1.0


def test_evaluation_is_the_central_crop(imagenet_dir):
    ds = data.load_dataset("imagenet2012", imagenet_dir)
    x, _ = next(iter(ds.eval_pipeline(batch_size=4)))
    assert x.shape == (4, 224, 224, 3)
    # The red frame lies outside the central 224/256 square: the crop is white.
    np.testing.assert_allclose(x.numpy()[:, 8:-8, 8:-8], 1.0, atol=0.05)
    assert ds.x_test.dtype == np.uint8 and ds.x_test.shape == (4, 224, 224, 3)
    np.testing.assert_allclose(data.normalize(ds.x_test), x.numpy(), atol=1e-6)


def test_resnet18_trains_on_it(imagenet_dir, tmp_path):
    from pipeline.train.trainer import TrainConfig, train

    config = TrainConfig(model="resnet18", method="bnn", dataset="imagenet2012", epochs=1,
                         batch_size=6, data_dir=str(imagenet_dir))  # fmt: skip
    run = train(config, out=tmp_path / "run", progress=False)
    result = run.result()
    # The recorded accuracy is the saved model's on the 4 centre-cropped test images.
    ds = data.load_dataset("imagenet2012", imagenet_dir)
    predicted = run.load_model().predict(data.normalize(ds.x_test), verbose=0).argmax(-1)
    # (within one image: batch-size-dependent rounding may flip a binary activation near 0)
    assert result["test_accuracy"] == pytest.approx(np.mean(predicted == ds.y_test), abs=0.25)
    assert result["test_accuracy"] * 4 == pytest.approx(round(result["test_accuracy"] * 4))
    assert run.config()["data"]["train_samples"] == 6
    assert run.config()["data"]["input_shape"] == [224, 224, 3]
    # The framing an app must reproduce reaches model.json (pipeline.export.app_metadata).
    from pipeline.export.exporter import app_metadata

    assert run.config()["data"]["preprocessing"] == imagenet.PREPROCESSING
    meta = app_metadata(run, needs_lce=True)
    assert (meta["preprocessing"]["resize"], meta["preprocessing"]["center_crop"]) == (256, 224)

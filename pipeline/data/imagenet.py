"""ImageNet (ILSVRC 2012) through tensorflow-datasets' ``imagenet2012`` builder.

ImageNet cannot be downloaded automatically (the files need an account), so tfds reads
the two archives from its *manual directory*::

    DATA_DIR/downloads/manual/ILSVRC2012_img_train.tar   (a tar of one tar per synset)
    DATA_DIR/downloads/manual/ILSVRC2012_img_val.tar     (50,000 JPEGs, labels from tfds)

``--data-dir DATA_DIR`` (default ``~/tensorflow_datasets``) is tfds' data directory; the
first use converts the archives to TFRecords there (hours for the real data, once).
The images stay on disk and stream through tf.data, so the dataset is not an in-memory
:class:`pipeline.data.Dataset` but offers the same interface plus its own pipelines.

Preprocessing is the standard ResNet/Inception one, on the JPEG bytes:

- train: a random crop covering 8–100 % of the image with aspect ratio 3/4–4/3
  (``sample_distorted_bounding_box``, Szegedy et al. 2015), decoded and resized to
  224×224, flipped left-right with probability ½;
- evaluation: the central 224/256 of the image (resize-256, centre-crop-224).

Pixels then map to [-1, 1] with the constants of :mod:`pipeline.data.base`, as every
other dataset does. The validation split (50,000 images) is the test set, as in the
papers seed 004 compares against.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data import register
from pipeline.data.base import PIXEL_OFFSET, PIXEL_SCALE
from pipeline.errors import DatasetUnavailableError

NAME = "imagenet2012"
DEFAULT_DATA_DIR = Path.home() / "tensorflow_datasets"
ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_SIZE = 224
CROP_FRACTION = 224 / 256  # evaluation: centre crop of the resize-256 image (RESIZE)
AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
SHUFFLE_BUFFER = 10_000
RESIZE = 256
# What an app must do to a photo before normalization to see what evaluation sees
# (eval_crop); recorded in config.json and model.json.
PREPROCESSING = {"resize": RESIZE, "center_crop": IMAGE_SIZE, "interpolation": "bilinear",
                 "summary": f"resize the shorter side to {RESIZE}, crop the central "
                            f"{IMAGE_SIZE}x{IMAGE_SIZE}"}  # fmt: skip


def manual_dir(data_dir: Path) -> Path:
    return data_dir / "downloads" / "manual"


def _builder(data_dir: Path) -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetUnavailableError(
            "imagenet2012 needs tensorflow-datasets: pip install tensorflow-datasets==4.9.7 "
            "tensorflow-metadata==1.16.1"
        ) from None
    return tfds.builder(NAME, data_dir=str(data_dir))


def prepare(data_dir: Path) -> Any:
    """The tfds builder for ``data_dir``, converting the manual archives on first use."""
    builder = _builder(data_dir)
    if builder.is_prepared():
        return builder
    manual = manual_dir(data_dir)
    if not all((manual / a).is_file() for a in ARCHIVES):
        raise DatasetUnavailableError(
            f"imagenet2012 is not prepared in {data_dir} and {manual} lacks "
            f"{' and '.join(ARCHIVES)}: download them from image-net.org (an account is "
            "needed), put them there and run again"
        )
    import tensorflow_datasets as tfds

    print(f"preparing imagenet2012 from {manual} into {data_dir} (once; hours for the full set)")
    config = tfds.download.DownloadConfig(manual_dir=str(manual))
    builder.download_and_prepare(download_config=config)
    return builder


# -- preprocessing on JPEG bytes ----------------------------------------------------------


def _to_unit_range(image: Any) -> Any:
    import tensorflow as tf

    return tf.cast(image, tf.float32) * PIXEL_SCALE + PIXEL_OFFSET


def train_crop(jpeg: Any, size: int = IMAGE_SIZE) -> Any:
    """Random-area, random-aspect crop of the JPEG, resized to ``size``², random flip."""
    import tensorflow as tf

    shape = tf.image.extract_jpeg_shape(jpeg)
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=whole, min_object_covered=0.1, aspect_ratio_range=ASPECT_RANGE,
        area_range=AREA_RANGE, max_attempts=10, use_image_if_no_bounding_boxes=True,
    )  # fmt: skip
    window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
    image = tf.image.resize(image, (size, size), method="bilinear")
    return tf.image.random_flip_left_right(image)


def eval_crop(jpeg: Any, size: int = IMAGE_SIZE) -> Any:
    """The central ``size/256`` square of the JPEG, resized to ``size``² (resize-256 +
    centre-crop-224, done as one crop of the original)."""
    import tensorflow as tf

    shape = tf.image.extract_jpeg_shape(jpeg)
    h, w = shape[0], shape[1]
    side = tf.cast(CROP_FRACTION * tf.cast(tf.minimum(h, w), tf.float32), tf.int32)
    window = tf.stack([(h - side + 1) // 2, (w - side + 1) // 2, side, side])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
    return tf.image.resize(image, (size, size), method="bilinear")


# -- the dataset ---------------------------------------------------------------------------


class ImageNet:
    """A streaming ImageNet split pair with the interface training and export use."""

    name = NAME

    def __init__(self, builder: Any, train: int | None = None, test: int | None = None) -> None:
        self.builder = builder
        self._train, self._test = train, test
        self.source = str(Path(builder.data_dir))
        self.labels: list[str] = list(builder.info.features["label"].names)

    def _split(self, split: str, limit: int | None) -> str:
        return f"{split}[:{limit}]" if limit is not None else split

    @property
    def train_size(self) -> int:
        n = self.builder.info.splits["train"].num_examples
        return min(n, self._train) if self._train is not None else n

    @property
    def test_size(self) -> int:
        n = self.builder.info.splits["validation"].num_examples
        return min(n, self._test) if self._test is not None else n

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (IMAGE_SIZE, IMAGE_SIZE, 3)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> ImageNet:
        """The first ``train`` / ``test`` examples (tfds shuffles examples when it writes
        the TFRecords, so a prefix is a random sample; ``seed`` is not needed)."""
        return ImageNet(self.builder, train, test)

    def metadata(self) -> dict[str, object]:
        return {
            "dataset": self.name,
            "input_shape": list(self.input_shape),
            "input_dtype": "float32",
            "normalization": {"scale": PIXEL_SCALE, "offset": PIXEL_OFFSET},
            "preprocessing": dict(PREPROCESSING),
            "labels": self.labels,
        }

    def _read(self, split: str, limit: int | None, shuffle: bool, seed: int = 0) -> Any:
        import tensorflow_datasets as tfds

        return self.builder.as_dataset(
            split=self._split(split, limit),
            as_supervised=True,
            shuffle_files=shuffle,
            decoders={"image": tfds.decode.SkipDecoding()},  # crop before decoding
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )

    def train_pipeline(self, batch_size: int, seed: int) -> Any:
        import tensorflow as tf

        pipe = self._read("train", self._train, shuffle=True, seed=seed)
        pipe = pipe.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        pipe = pipe.map(lambda jpeg, y: (_to_unit_range(train_crop(jpeg)), y),
                        num_parallel_calls=tf.data.AUTOTUNE)  # fmt: skip
        return pipe.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _eval_uint8(self) -> Any:
        import tensorflow as tf

        pipe = self._read("validation", self._test, shuffle=False)
        return pipe.map(lambda jpeg, y: (tf.cast(tf.round(eval_crop(jpeg)), tf.uint8), y),
                        num_parallel_calls=tf.data.AUTOTUNE)  # fmt: skip

    def eval_pipeline(self, batch_size: int) -> Any:
        import tensorflow as tf

        # Through uint8, so the evaluation images equal x_test (what export feeds LCE).
        pipe = self._eval_uint8().map(lambda x, y: (_to_unit_range(x), y))
        return pipe.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    @functools.cached_property
    def _test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for x, y in self._eval_uint8().batch(256).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys).astype(np.int64)

    @property
    def x_test(self) -> np.ndarray:
        """The evaluation images as uint8 arrays, for export's parity check. This holds the
        whole test split in memory: export with a ``test_samples`` subset."""
        return self._test_arrays[0]

    @property
    def y_test(self) -> np.ndarray:
        return self._test_arrays[1]


@register(NAME)
def load_imagenet(data_dir: Path | None = None) -> ImageNet:
    directory = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
    return ImageNet(prepare(directory))

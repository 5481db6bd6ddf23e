"""tf.data input pipelines: shuffle, augment (a parallel map), batch, prefetch.

In-memory datasets (MNIST, Fashion-MNIST, CIFAR-10, image folders) are normalized with
:func:`pipeline.data.normalize` — the one preprocessing definition — and augmented on
the fly. Streaming datasets (ImageNet, :mod:`pipeline.data.imagenet`) decode and crop
inside their own pipelines and expose ``train_pipeline`` / ``eval_pipeline``.

Augmentations (``--augment``):

- ``crop_flip`` — pad 4 pixels, take a random crop of the original size, flip left-right
  with probability ½: the CIFAR-10 augmentation of He et al. (arXiv:1512.03385 §4.2),
  which TWN and BinaryNet's CIFAR-10 results use too. Padding is 0.0 in normalized
  space (mid-grey), close to the zero padding of mean-subtracted images in those papers.
- ``flip`` — the flip alone (for datasets where crops cut off the object).
- ``none``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from pipeline.data.base import normalize
from pipeline.errors import UsageError

AUGMENTATIONS = ("none", "flip", "crop_flip")
CROP_PAD = 4


def check_augment(name: str) -> None:
    if name not in AUGMENTATIONS:
        choices = ", ".join(AUGMENTATIONS)
        raise UsageError(f"unknown augmentation '{name}'; choose one of: {choices}")


def flip(x: tf.Tensor) -> tf.Tensor:
    return tf.image.random_flip_left_right(x)


def crop_flip(x: tf.Tensor) -> tf.Tensor:
    h, w, c = x.shape
    padded = tf.pad(x, [[CROP_PAD, CROP_PAD], [CROP_PAD, CROP_PAD], [0, 0]])
    return flip(tf.image.random_crop(padded, (h, w, c)))


_MAPS = {"flip": flip, "crop_flip": crop_flip}


def train_pipeline(ds: Any, batch_size: int, seed: int, augment: str = "none") -> tf.data.Dataset:
    """Batches of (image, label) for training, reshuffled every epoch."""
    check_augment(augment)
    if hasattr(ds, "train_pipeline"):  # a streaming dataset brings its own preprocessing
        return ds.train_pipeline(batch_size, seed)
    pipe = tf.data.Dataset.from_tensor_slices((normalize(ds.x_train), ds.y_train))
    pipe = pipe.shuffle(len(ds.x_train), seed=seed, reshuffle_each_iteration=True)
    if augment != "none":
        fn = _MAPS[augment]
        pipe = pipe.map(lambda x, y: (fn(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return pipe.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_pipeline(ds: Any, batch_size: int) -> tf.data.Dataset:
    """Batches of (image, label) of the test split, in order."""
    if hasattr(ds, "eval_pipeline"):
        return ds.eval_pipeline(batch_size)
    pipe = tf.data.Dataset.from_tensor_slices((normalize(ds.x_test), ds.y_test))
    return pipe.batch(batch_size).prefetch(tf.data.AUTOTUNE)

"""An image-folder dataset: ``DIR/{train,test}/<class>/*.png|jpg`` (class = folder name).

Images are decoded with Pillow (a matplotlib dependency) and resized to the first image's
size, so a folder of photos of mixed sizes still gives one tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.base import Dataset
from pipeline.errors import DatasetUnavailableError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def _read_split(split: Path, labels: list[str], size: tuple[int, int] | None, gray: bool):
    from PIL import Image, UnidentifiedImageError

    xs, ys = [], []
    for index, label in enumerate(labels):
        for path in sorted((split / label).iterdir()) if (split / label).is_dir() else []:
            if path.suffix.lower() not in EXTENSIONS:
                continue
            try:
                img = Image.open(path).convert("L" if gray else "RGB")
            except (UnidentifiedImageError, OSError) as err:
                raise DatasetUnavailableError(f"cannot read image {path}: {err}") from None
            size = size or img.size
            xs.append(np.asarray(img.resize(size) if img.size != size else img, dtype=np.uint8))
            ys.append(index)
    return np.stack(xs) if xs else np.zeros((0, 1, 1), np.uint8), np.asarray(ys), size


def _is_gray(split: Path, labels: list[str]) -> bool:
    from PIL import Image

    for label in labels:
        for path in sorted((split / label).iterdir()):
            if path.suffix.lower() in EXTENSIONS:
                return Image.open(path).mode in ("L", "1", "I;16")
    return False


def load_image_folder(root: Path) -> Dataset:
    train, test = root / "train", root / "test"
    if not train.is_dir() or not test.is_dir():
        raise DatasetUnavailableError(
            f"{root} must contain train/<class>/ and test/<class>/ folders"
        )
    labels = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not labels:
        raise DatasetUnavailableError(f"{train} has no class folders")
    gray = _is_gray(train, labels)
    x_tr, y_tr, size = _read_split(train, labels, None, gray)
    x_te, y_te, _ = _read_split(test, labels, size, gray)
    if len(x_tr) == 0 or len(x_te) == 0:
        raise DatasetUnavailableError(f"{root} has no readable images in train/ or test/")
    return Dataset(f"folder:{root}", x_tr, y_tr, x_te, y_te, labels=labels, source=str(root))

"""The in-memory dataset every loader returns, and the one preprocessing definition."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Pixels in [0, 255] map to [-1, 1]: symmetric around zero, which suits sign()-based
# binarization of later layers. Exported models record this so apps preprocess the same.
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) -> float32 in [-1, 1]."""
    return images.astype(np.float32) * np.float32(PIXEL_SCALE) + np.float32(PIXEL_OFFSET)


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # uint8, (N, H, W, C)
    y_train: np.ndarray  # int64, (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    source: str = ""  # where the files came from, recorded in config.json
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("x_train", "x_test"):
            x = getattr(self, split)
            if x.ndim == 3:  # grayscale without a channel axis
                setattr(self, split, x[..., None])
        self.y_train = self.y_train.astype(np.int64).reshape(-1)
        self.y_test = self.y_test.astype(np.int64).reshape(-1)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def train_size(self) -> int:
        return len(self.x_train)

    @property
    def test_size(self) -> int:
        return len(self.x_test)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> Dataset:
        """A reproducible random subset (for quick runs and tests)."""
        rng = np.random.default_rng(seed)

        def pick(x: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
            if n is None or n >= len(x):
                return x, y
            idx = np.sort(rng.choice(len(x), size=n, replace=False))
            return x[idx], y[idx]

        x_tr, y_tr = pick(self.x_train, self.y_train, train)
        x_te, y_te = pick(self.x_test, self.y_test, test)
        return Dataset(self.name, x_tr, y_tr, x_te, y_te, self.labels, self.source, self.extra)

    def metadata(self) -> dict[str, object]:
        """What an app needs to feed the model: shape, normalization and labels."""
        return {
            "dataset": self.name,
            "input_shape": list(self.input_shape),
            "input_dtype": "float32",
            "normalization": {"scale": PIXEL_SCALE, "offset": PIXEL_OFFSET},
            "labels": self.labels,
        }

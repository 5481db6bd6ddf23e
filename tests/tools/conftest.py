"""A tiny trained float run: the source every tool test quantizes."""

from __future__ import annotations

import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture(scope="session")
def float_run(tmp_path_factory: pytest.TempPathFactory):
    """A float LeNet-5 trained for one epoch on 1,000 MNIST images (300 test images)."""
    from pipeline.train.trainer import TrainConfig, train

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


@pytest.fixture
def rejected_in_one_line(float_run, tmp_path, capsys):
    """``check(main, args)``: the tool's CLI exits 2 with one ``error:`` line and writes
    no output folder when run on ``float_run`` with bad ``args``."""
    from pipeline import cli

    def check(main, args: list[str]) -> None:
        with pytest.raises(SystemExit) as exit_:
            cli.run(main, ["--run", str(float_run.path), "--out", str(tmp_path / "o"), *args])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()

    return check

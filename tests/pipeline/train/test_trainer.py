"""Training into a run directory: files, reload, resume and CLI errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline import cli, data, runs
from pipeline.train.trainer import TrainConfig, main, resume, train


def test_run_directory_holds_config_metrics_result_and_model(trained_run):
    config = trained_run.config()
    assert config["train"]["model"] == "lenet5" and config["train"]["method"] == "bnn"
    assert config["method"]["bits"] == {"w": 1, "a": 1, "g": 32}
    assert config["data"]["train_samples"] == 2000 and config["data"]["test_samples"] == 500
    rows = trained_run.metrics()
    assert [int(r["epoch"]) for r in rows] == [1]
    result = trained_run.result()
    # 2,000 images for one epoch: far above chance (10 %), below a fully trained net.
    assert 0.6 < result["test_accuracy"] <= 1.0
    # --out placed it outside runs/: no `latest` link in a folder the user never named
    assert not (trained_run.path.parent / runs.LATEST).exists()


def test_saved_model_reloads_with_the_same_accuracy(trained_run, mnist_small):
    model = trained_run.load_model()
    x = data.normalize(mnist_small.x_test)
    acc = float(np.mean(model.predict(x, verbose=0).argmax(-1) == mnist_small.y_test))
    assert acc == pytest.approx(trained_run.result()["test_accuracy"], abs=1e-6)
    quantized = [layer for layer in model.layers if "quant" in type(layer).__name__.lower()]
    assert len(quantized) == 4  # 2 conv + 2 dense, all larq quantized layers


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_interrupted_training_resumes_from_last_epoch(tmp_path, monkeypatch):
    from pipeline.methods.binary import BNN

    config = TrainConfig(epochs=2, train_samples=256, test_samples=128, batch_size=64)
    monkeypatch.setattr(BNN, "callbacks", lambda self: [_Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        train(config, out=tmp_path / "run", progress=False)
    run = runs.Run(tmp_path / "run")
    assert not run.has_result()
    assert runs.read_json(run.file(runs.STATE)) == {"epoch": 1}
    saved_config = run.config()
    monkeypatch.undo()
    resume(run, progress=False)
    assert [int(r["epoch"]) for r in run.metrics()] == [1, 2]
    assert run.config() == saved_config
    assert run.result()["epochs"] == 2


@pytest.mark.parametrize(
    ("flag", "value", "listed"),
    [
        ("--model", "resnet9000", "lenet5"),
        ("--method", "nope", "bnn"),
        ("--dataset", "imagenette", "mnist"),
    ],
)
def test_unknown_names_exit_2_with_the_choices(flag, value, listed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, [flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and value in err and listed in err


def test_bad_option_for_method_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--method", "bnn", "--wbits", "3"])
    assert exit_info.value.code == 2
    assert "takes no option 'wbits'" in capsys.readouterr().err


def test_resume_of_a_finished_run_is_refused(trained_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--resume", "--out", str(trained_run.path)])
    assert exit_info.value.code == 2
    assert "already complete" in capsys.readouterr().err


def test_cli_prints_no_traceback_on_bad_input():
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--method", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown method 'nope'" in proc.stderr


def test_list_methods_names_each_method_with_its_paper(capsys):
    with pytest.raises(SystemExit):
        cli.run(main, ["--list-methods"])
    out = capsys.readouterr().out
    assert any(line.startswith("bnn ") and "1602.02830" in line for line in out.splitlines())


def _rejected(argv: list[str], capsys) -> str:
    """Run the CLI on bad input: exit 2 and one ``error:`` line, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-samples", "-1"], "--train-samples must be at least 1, got -1"),
        (["--test-samples", "0"], "--test-samples must be at least 1, got 0"),
        (["--option", "optimizer_name=rmsprop"], "unknown optimizer_name 'rmsprop'"),
        (["--option", "lr_schedule=cosin"], "unknown lr_schedule 'cosin'"),
        (["--method", "bnn-shift", "--option", "optimizer_name=rmsprop"], "shift-adamax"),
        (["--dataset", "cifar10", "--data-dir", "no/such/dir"], "is not a directory"),
        (["--lr-boundaries", "3", "2"], "--lr-boundaries must be increasing"),
    ],
)
def test_bad_settings_exit_2_before_the_run_directory_exists(args, message, tmp_path, capsys):
    out = tmp_path / "runs" / "x"
    assert message in _rejected([*args, "--out", str(out)], capsys)
    assert not (tmp_path / "runs").exists()  # neither the run nor its parent was made


def test_missing_dataset_leaves_no_run_directory(tmp_path):
    from pipeline.errors import DatasetUnavailableError

    out = tmp_path / "run"
    config = TrainConfig(dataset=f"folder:{tmp_path / 'no-images'}", epochs=1)
    with pytest.raises(DatasetUnavailableError):
        train(config, out=out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", "3", "epochs must be an integer, got '3'"),
        ("epochs", True, "epochs must be an integer, got True"),
        ("lr_decay", "0.1", "lr_decay must be a number"),
        ("lr_boundaries", [1.5], "lr_boundaries must be a list of integers"),
        ("train_samples", 2.0, "train_samples must be an integer"),
        ("method_options", [], "method_options must be a table"),
    ],
)
def test_settings_of_the_wrong_type_are_usage_errors(field, value, message):
    """Grid files and config.json bypass argparse's ``type=int``; these used to raise
    TypeError (``"3" < 1``) or pass silently (``True`` is an int to Python)."""
    from pipeline.errors import UsageError

    with pytest.raises(UsageError, match=message):
        TrainConfig(**{field: value}).validate()


def test_resume_from_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    from dataclasses import asdict

    run = runs.Run(tmp_path / "run")
    config = TrainConfig(epochs=2, train_samples=64, test_samples=32)
    run.path.mkdir()
    run.write_config({"train": asdict(config)})
    runs.write_json(run.file(runs.STATE), {"epoch": 1})
    run.file(runs.CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    err = _rejected(["--resume", "--out", str(run.path)], capsys)
    assert f"{run.file(runs.CHECKPOINT)} is not a readable Keras model" in err
    assert not run.has_result()

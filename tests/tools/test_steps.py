"""The tools' shared command-line options and retraining settings (one home for both)."""

from __future__ import annotations

import inspect

import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline import cli
from pipeline.errors import UsageError
from tools import steps
from tools.inq import inq
from tools.progressive import progressive


def _args(*extra: str):
    p = cli.parser("test", "test")
    steps.add_arguments(p)
    return p.parse_args(["--bits", "4", "--out", "o", *extra])


@pytest.mark.parametrize("tool", [inq, progressive])
def test_common_kwargs_are_accepted_by_every_tool(tool):
    kwargs = steps.common_kwargs(_args())
    params = inspect.signature(tool).parameters
    assert set(kwargs) <= set(params)
    # ... and every setting a tool records comes from them under the same name.
    settings = steps.training_settings(2, 1e-4, 64, 0)
    assert set(settings) <= set(kwargs)


def test_common_kwargs_carry_the_options():
    kwargs = steps.common_kwargs(_args("--epochs-per-step", "3", "--lr", "0.01", "--batch-size",
                                       "16", "--seed", "7", "--train-samples", "900",
                                       "--resume", "--quiet"))  # fmt: skip
    assert kwargs == {"epochs_per_step": 3, "learning_rate": 0.01, "batch_size": 16, "seed": 7,
                      "train_samples": 900, "resume": True, "progress": False,
                      "on_step": steps.print_step}  # fmt: skip
    assert steps.common_kwargs(_args())["progress"] is True


@pytest.mark.parametrize(
    "bad, match",
    [((0, 1e-4, 64, 0, None), "epochs"), ((1, 0.0, 64, 0, None), "lr"),
     ((1, 1e-4, 0, 0, None), "batch"), ((1, 1e-4, 64, 0, 0), "train-samples")],
)  # fmt: skip
def test_training_settings_are_checked(bad, match):
    with pytest.raises(UsageError, match=match):
        steps.training_settings(*bad)


@pytest.mark.parametrize("tool", ["inq", "progressive"])
def test_corrupt_source_model_is_one_line_exit_2(tool, tmp_path, capsys):
    """A damaged model.keras in the source run: one line, exit 2, no output run."""
    import importlib
    from dataclasses import asdict

    from pipeline import cli, runs
    from pipeline.train.trainer import TrainConfig

    source = runs.Run(tmp_path / "float")
    source.path.mkdir()
    source.write_config({"train": asdict(TrainConfig(method="float", train_samples=64))})
    source.file(runs.MODEL).write_bytes(b"PK\x03\x04 cut short")
    main = importlib.import_module(f"tools.{tool}").main
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--run", str(source.path), "--bits", "4", "--out", str(out), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert f"{source.file(runs.MODEL)} is not a readable Keras model" in err
    assert not out.exists()

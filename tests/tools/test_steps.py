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

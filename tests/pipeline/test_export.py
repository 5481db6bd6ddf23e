"""Export of a trained run: LCE conversion, parity on the test set, reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline import cli, runs
from pipeline.errors import ParityError, UsageError
from pipeline.export import export_run, main


@pytest.fixture(scope="module")
def exported(exported_run):
    return exported_run


def test_export_writes_a_binary_tflite_that_matches_keras(exported):
    run, report = exported
    assert run.file(runs.TFLITE).read_bytes()[4:8] == b"TFL3"
    assert report["ops"]["LceBconv2d"] >= 1  # the hidden binary convolution is bitpacked
    assert report["argmax_agreement"] >= 0.999 and report["parity_ok"]
    assert report["tflite_accuracy"] == pytest.approx(report["keras_accuracy"], abs=0.002)
    assert report["keras_accuracy"] == pytest.approx(run.result()["test_accuracy"], abs=1e-6)
    assert report["test_samples"] == 500
    assert 0.5 < report["binary_mac_fraction"] < 1.0  # first conv stays float
    assert json.loads(run.file(runs.EXPORT_REPORT).read_text()) == report


def test_sidecar_tells_apps_how_to_feed_the_model(exported):
    run, _ = exported
    meta = json.loads(run.file("model.json").read_text())
    assert meta["input_shape"] == [28, 28, 1] and meta["labels"] == [str(d) for d in range(10)]
    assert meta["normalization"] == {"scale": 1 / 127.5, "offset": -1.0}
    assert meta["needs_lce"] is True


def test_broken_parity_fails_the_export(exported):
    run, _ = exported
    with pytest.raises(ParityError, match="parity broken"):
        export_run(run, min_agreement=1.01)  # no model can agree on more than 100 %


def test_export_without_any_run_says_how_to_get_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "train one first" in capsys.readouterr().err
    with pytest.raises(UsageError, match="not a bitlite run"):
        runs.resolve(tmp_path)


def test_end_to_end_from_the_command_line(tmp_path):
    """The two CLIs as a user runs them: train a small subset, then export it."""
    out = tmp_path / "e2e"
    common = {"capture_output": True, "text": True, "timeout": 600}
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.train",
            "--train-samples",
            "512",
            "--test-samples",
            "200",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ],
        **common,
    )
    assert train.returncode == 0, train.stderr
    export = subprocess.run(
        [sys.executable, "-m", "pipeline.export", "--run", str(out), "--quiet"], **common
    )
    assert export.returncode == 0, export.stderr
    assert "argmax agreement" in export.stdout and "LceBconv2d" in export.stdout
    assert json.loads((out / runs.EXPORT_REPORT).read_text())["parity_ok"] is True

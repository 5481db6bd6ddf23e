"""``python -m pipeline.compare``: a 2×2 grid runs, resumes after an interruption without
retraining finished cells, writes results.csv, results.md and the plots, and exports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pipeline
import pipeline.train.trainer
from pipeline import cli, runs
from pipeline.compare.cli import BITS_PNG, RESULTS_MD, SIZE_PNG, main
from pipeline.compare.grid import RESULTS_CSV, load_grid, read_csv

GRID = """
name = "2x2"
models = ["lenet5", "mlp1024"]
datasets = ["mnist"]
export = false
[methods]
bnn = [1]
[train]
epochs = 1
batch_size = 50
train_samples = 200
test_samples = 100
"""


def assert_plot(path) -> None:
    """A real, drawn PNG: it decodes, has a figure's size and is not blank (magic bytes
    alone pass for an empty or white image)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert width >= 300 and height >= 200, (width, height)
    ink = np.any(pixels < 200, axis=-1)  # axes, labels, points and lines
    assert 0.005 < ink.mean() < 0.6, ink.mean()
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[:: max(1, ink.size // 20000)]}
    assert len(colours) > 8  # more than a flat fill or a frame


class Interrupted(KeyboardInterrupt):  # Ctrl-C: a failing cell no longer stops the grid
    pass


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Run the grid, interrupted in its third cell, then run it again; record the calls."""
    tmp = tmp_path_factory.mktemp("grid")
    grid_file, out = tmp / "grid.toml", tmp / "out"
    grid_file.write_text(GRID)
    calls = {"train": 0, "resume": 0, "fit": 0}
    real = {"train": pipeline.train.trainer.train, "resume": pipeline.train.trainer.resume}
    real_fit = pipeline.train.trainer._fit

    def fit(*args, **kwargs):  # the third cell is interrupted after its config is written
        calls["fit"] += 1
        if calls["fit"] == 3:
            raise Interrupted
        return real_fit(*args, **kwargs)

    def counted(name):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real[name](*args, **kwargs)

        return wrapper

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline.train.trainer, "_fit", fit)
        mp.setattr(pipeline.train.trainer, "train", counted("train"))
        mp.setattr(pipeline.train.trainer, "resume", counted("resume"))
        with pytest.raises(Interrupted):
            main(["--grid", str(grid_file), "--out", str(out), "--quiet"])
        grid = load_grid(grid_file, out=out)
        first = {
            "rows": read_csv(out / RESULTS_CSV),
            "stamps": [
                grid.run_dir(c).file(runs.RESULT).stat().st_mtime_ns for c in grid.cells()[:2]
            ],
            "interrupted_has_config": grid.run_dir(grid.cells()[2]).file(runs.CONFIG).exists(),
            "interrupted_has_result": grid.run_dir(grid.cells()[2]).has_result(),
        }
        calls.update(train=0, resume=0)
        code = main(["--grid", str(grid_file), "--out", str(out), "--quiet"])
    return {"grid": grid, "grid_file": grid_file, "out": out, "first": first, "calls": calls,
            "code": code}  # fmt: skip


def test_interrupted_grid_resumes_without_retraining_finished_cells(resumed):
    grid, first = resumed["grid"], resumed["first"]
    cells = grid.cells()
    assert [c.name for c in cells] == ["mnist-lenet5-float-w32", "mnist-lenet5-bnn-w1",
                                       "mnist-mlp1024-float-w32", "mnist-mlp1024-bnn-w1"]  # fmt: skip
    assert len(first["rows"]) == 2  # results.csv is rewritten after every cell
    assert first["interrupted_has_config"] and not first["interrupted_has_result"]
    assert resumed["code"] == 0
    # Second run: cells 1–2 kept, cell 3 resumed from its run directory, cell 4 new.
    assert resumed["calls"] == {"train": 1, "resume": 1, "fit": 5}
    stamps = [grid.run_dir(c).file(runs.RESULT).stat().st_mtime_ns for c in cells[:2]]
    assert stamps == first["stamps"]
    assert all(grid.run_dir(c).has_result() for c in cells)


def test_results_csv_markdown_and_plot(resumed):
    grid, out = resumed["grid"], resumed["out"]
    rows = read_csv(out / RESULTS_CSV)
    assert [(r["model"], r["method"], r["bits"]) for r in rows] == [
        ("lenet5", "float", "32"), ("lenet5", "bnn", "1"),
        ("mlp1024", "float", "32"), ("mlp1024", "bnn", "1"),
    ]  # fmt: skip
    for row, cell in zip(rows, grid.cells(), strict=True):
        acc = grid.run_dir(cell).result()["test_accuracy"]
        base = grid.run_dir(grid.baseline(cell)).result()["test_accuracy"]
        assert float(row["accuracy"]) == pytest.approx(acc)
        assert float(row["float_accuracy"]) == pytest.approx(base)
        assert float(row["delta_pt"]) == pytest.approx(100 * (acc - base), abs=0.01)
    md = (out / RESULTS_MD).read_text()
    assert "## lenet5 on mnist" in md and "## mlp1024 on mnist" in md
    assert f"| bnn | 1-bit | {100 * float(rows[1]['accuracy']):.2f} % |" in md
    assert "python -m pipeline.compare --grid" in md
    assert_plot(out / BITS_PNG)
    assert not (out / SIZE_PNG).exists()  # nothing exported yet: no size plot
    (out / RESULTS_MD).unlink()
    grid_file = resumed["grid_file"]
    assert main(["--grid", str(grid_file), "--out", str(out), "--report"]) == 0  # no training
    assert (out / RESULTS_MD).read_text().replace("--report", "--quiet") == md


def test_export_added_later_converts_finished_cells_without_retraining(
    resumed, monkeypatch, tmp_path
):
    """On a copy of the module's grid and cells: the other tests read them as the
    resumed run left them, whichever order the tests run in."""
    import shutil

    out, grid_file = tmp_path / "out", tmp_path / "grid.toml"
    shutil.copytree(resumed["out"], out, symlinks=True)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(pipeline.train.trainer, "_fit", no_training)
    text = resumed["grid_file"].read_text().replace('["lenet5", "mlp1024"]', '["lenet5"]')
    grid_file.write_text(text.replace("export = false", "export = true"))
    assert main(["--grid", str(grid_file), "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / RESULTS_CSV)
    assert [r["method"] for r in rows] == ["float", "bnn"]
    for row in rows:
        run = runs.Run(out / "cells" / f"mnist-lenet5-{row['method']}-w{row['bits']}")
        report = runs.read_json(run.file(runs.EXPORT_REPORT))
        assert (
            int(row["tflite_bytes"]) == report["size_bytes"] == run.file(runs.TFLITE).stat().st_size
        )
        assert row["parity_ok"] == "True"
        assert float(row["tflite_accuracy"]) == pytest.approx(float(row["accuracy"]), abs=0.011)
    assert_plot(out / SIZE_PNG)
    assert "| .tflite |" in (out / RESULTS_MD).read_text()
    assert resumed["grid_file"].read_text() == GRID  # the shared grid file is untouched
    assert not (resumed["out"] / SIZE_PNG).exists()


def test_jobs_2_runs_the_same_cells_to_the_same_results(resumed, tmp_path):
    """Two worker processes, each cell once, trained as configured. Accuracies match the
    in-process run's only roughly here: each worker has half the cores, so TensorFlow sums
    in another order (test_ray.py fixes the threads and compares exactly)."""
    grid_file, out = tmp_path / "grid.toml", tmp_path / "jobs2"
    grid_file.write_text(GRID)  # not resumed's file: another test edits that one
    assert main(["--grid", str(grid_file), "--out", str(out), "--quiet", "--jobs", "2"]) == 0
    grid, sequential = load_grid(grid_file, out=out), resumed["grid"]
    pids = set()
    for cell in grid.cells():
        worker = runs.read_json(grid.run_dir(cell).file("worker.json"))
        assert worker["attempt"] == 1
        assert worker["bitlite"] == str(Path(pipeline.__file__).parent)  # this checkout's code
        pids.add(worker["pid"])
        run, reference = grid.run_dir(cell), sequential.run_dir(cell)
        assert run.config()["train"] == {**reference.config()["train"]}
        assert run.result()["test_accuracy"] == pytest.approx(
            reference.result()["test_accuracy"], abs=0.05)  # fmt: skip
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, not this process
    rows = read_csv(out / RESULTS_CSV)
    assert [(r["model"], r["method"]) for r in rows] == [
        ("lenet5", "float"), ("lenet5", "bnn"), ("mlp1024", "float"), ("mlp1024", "bnn")]  # fmt: skip
    assert "--jobs 2" in (out / RESULTS_MD).read_text()


def test_cli_check_lists_cells_and_errors_are_one_line(tmp_path, capsys):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID)
    assert main(["--grid", str(grid_file), "--out", str(tmp_path), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "mnist-mlp1024-bnn-w1" in printed and "4 cells, valid" in printed
    grid_file.write_text(GRID.replace("bnn = [1]", "bnn = [3]"))
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--grid", str(grid_file), "--check"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cell (model=lenet5, method=bnn, bits=3, dataset=mnist)" in err


@pytest.mark.parametrize("extra", [["--check"], [], ["--jobs", "2"]])
def test_grid_of_the_wrong_type_exits_2_before_anything_is_made(tmp_path, capsys, extra):
    """Also with --jobs 2, where a worker checks the grid: its error is the driver's."""
    grid_file, out = tmp_path / "grid.toml", tmp_path / "out"
    grid_file.write_text(GRID.replace("epochs = 1", 'epochs = "3"'))
    argv = ["--grid", str(grid_file), "--out", str(out), "--quiet", *extra]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "epochs must be an integer, got '3'" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()  # no cell trained, no folder made

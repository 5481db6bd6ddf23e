"""The grid schedule on the in-process executor, with a stand-in for training: order and
dependencies, retries, failures reported in results.md, Ctrl-C and resume, --executor ray
without Ray, [resources]. Real training on other executors: test_cli.py (--jobs 2),
test_ray.py."""

from __future__ import annotations

import os
import re
import sys

import pytest

from pipeline import cli, runs
from pipeline.compare import schedule
from pipeline.compare.cli import RESULTS_MD, main
from pipeline.compare.executors import CellFailed, ProcessPool, Sequential, make_executor
from pipeline.compare.grid import RESULTS_CSV, Cell, Grid, GridError, Resources, load_grid, read_csv
from pipeline.errors import UsageError

GRID = """
name = "schedule"
models = ["lenet5", "mlp1024"]
datasets = ["mnist"]
export = false
[methods]
bnn = [1]
inq = [4]
[train]
epochs = 1
"""
ORDER = ["mnist-lenet5-float-w32", "mnist-lenet5-bnn-w1", "mnist-lenet5-inq-w4",
         "mnist-mlp1024-float-w32", "mnist-mlp1024-bnn-w1", "mnist-mlp1024-inq-w4"]  # fmt: skip


class FakeTraining:
    """A cell task that writes a result at once and records the calls; ``fail`` maps a
    cell name to how many of its first attempts raise (or to KeyboardInterrupt)."""

    def __init__(self, fail: dict[str, int | type] | None = None) -> None:
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, int]] = []

    def __call__(self, grid: Grid, cell: Cell, attempt: schedule.Attempt) -> schedule.Finished:
        self.calls.append((cell.name, attempt.number))
        if cell.tool:  # a tool starts from its float cell's finished run
            assert grid.run_dir(grid.baseline(cell)).has_result(), f"{cell.name} before float"
        plan = self.fail.get(cell.name, 0)
        if plan is KeyboardInterrupt:
            raise KeyboardInterrupt
        if isinstance(plan, int) and attempt.number <= plan:
            raise CellFailed(f"RuntimeError: {cell.name} attempt {attempt.number} broke")
        accuracy = 0.9 if cell.is_float else 0.8
        grid.run_dir(cell).write_result({"test_accuracy": accuracy, "params": 10})
        return schedule.Finished("here", 0, 0.0, 0.0)


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def run(grid_file, out, task, retries=0) -> schedule.Outcome:
    grid = load_grid(grid_file, out=out)
    return schedule.run_grid(grid, Sequential(), retries=retries, progress=False,
                             log=lambda _: None, task=task)  # fmt: skip


def test_every_cell_once_floats_before_the_tools_that_start_from_them(grid_file, tmp_path):
    task = FakeTraining()
    outcome = run(grid_file, tmp_path / "out", task)
    assert task.calls == [(name, 1) for name in ORDER]
    assert not outcome.failed and [f"{r['dataset']}-{r['model']}-{r['method']}-w{r['bits']}"
                                   for r in outcome.rows] == ORDER  # fmt: skip
    assert len(read_csv(tmp_path / "out" / RESULTS_CSV)) == 6


class TwoSlots(Sequential):
    """Runs each call at once, but the driver may hand it two at a time, as to a pool."""

    slots = 2


def test_with_two_slots_the_longest_paths_start_first(grid_file, tmp_path):
    # Float cells first (the tools wait on them), then the tool cells (several training
    # steps), then the rest: no worker is left running one long cell alone at the end.
    task = FakeTraining()
    grid = load_grid(grid_file, out=tmp_path / "out")
    outcome = schedule.run_grid(grid, TwoSlots(), retries=0, progress=False,
                                log=lambda _: None, task=task)  # fmt: skip
    assert [name for name, _ in task.calls] == [
        "mnist-lenet5-float-w32", "mnist-mlp1024-float-w32", "mnist-lenet5-inq-w4",
        "mnist-mlp1024-inq-w4", "mnist-lenet5-bnn-w1", "mnist-mlp1024-bnn-w1"]  # fmt: skip
    assert not outcome.failed and len(outcome.rows) == 6


def test_a_cell_that_fails_once_is_retried_and_the_table_is_complete(grid_file, tmp_path):
    task = FakeTraining({"mnist-lenet5-float-w32": 1})
    outcome = run(grid_file, tmp_path / "out", task, retries=1)
    assert task.calls[:2] == [("mnist-lenet5-float-w32", 1), ("mnist-lenet5-float-w32", 2)]
    assert len(task.calls) == 7 and not outcome.failed and len(outcome.rows) == 6
    assert outcome.retried == {"mnist-lenet5-float-w32": [
        "RuntimeError: mnist-lenet5-float-w32 attempt 1 broke"]}  # fmt: skip


def test_out_of_retries_the_cell_and_its_dependents_fail_and_the_rest_completes(
    grid_file, tmp_path, monkeypatch, capsys
):
    task = FakeTraining({"mnist-lenet5-float-w32": 3})
    monkeypatch.setattr(schedule, "cell_task", task)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--grid", str(grid_file), "--out", str(out), "--quiet", "--retries", "2"])
    assert exit_info.value.code == 1
    assert "2 of 6 cells failed (see results.md)" in capsys.readouterr().err
    assert [c for c in task.calls if c[0] == "mnist-lenet5-float-w32"] == [
        ("mnist-lenet5-float-w32", n) for n in (1, 2, 3)]  # fmt: skip
    assert "mnist-lenet5-inq-w4" not in {name for name, _ in task.calls}  # never started
    rows = read_csv(out / RESULTS_CSV)
    assert [r["model"] for r in rows] == ["mlp1024"] * 3  # lenet5's bnn ran, but no baseline
    assert (out / "cells" / "mnist-lenet5-bnn-w1" / runs.RESULT).exists()
    md = (out / RESULTS_MD).read_text()
    assert "## Failed cells" in md
    assert "| mnist-lenet5-float-w32 | RuntimeError: mnist-lenet5-float-w32 attempt 3 broke |" in md
    assert "| mnist-lenet5-inq-w4 | not run: mnist-lenet5-float-w32 failed |" in md
    # The rerun retries only the failed cells; the finished ones are kept.
    task.fail.clear()
    task.calls.clear()
    assert main(["--grid", str(grid_file), "--out", str(out), "--quiet"]) == 0
    assert [name for name, _ in task.calls] == [ORDER[0], ORDER[2]]  # bnn did not need float
    assert "Failed cells" not in (out / RESULTS_MD).read_text()


def test_ctrl_c_stops_scheduling_and_the_rerun_resumes(grid_file, tmp_path):
    out = tmp_path / "out"
    task = FakeTraining({"mnist-mlp1024-float-w32": KeyboardInterrupt})
    with pytest.raises(KeyboardInterrupt):
        run(grid_file, out, task)
    assert [name for name, _ in task.calls] == ORDER[:4]  # nothing after the interrupted cell
    grid = load_grid(grid_file, out=out)
    stamps = {
        c.name: grid.run_dir(c).file(runs.RESULT).stat().st_mtime_ns for c in grid.cells()[:3]
    }
    assert len(read_csv(out / RESULTS_CSV)) == 3  # rewritten after every finished cell
    task.fail.clear()
    task.calls.clear()
    outcome = run(grid_file, out, task)
    assert [name for name, _ in task.calls] == ORDER[3:]
    assert outcome.kept == ORDER[:3] and len(outcome.rows) == 6
    assert stamps == {n: grid.run_dir(c).file(runs.RESULT).stat().st_mtime_ns
                      for n, c in zip(stamps, grid.cells(), strict=False)}  # fmt: skip


def test_cells_write_no_shared_latest_link_and_their_environment_is_restored(grid_file, tmp_path):
    """``cells/latest`` would be one file every parallel cell writes."""

    def task(grid, cell, attempt):
        with schedule.cell_environment(threads=1, share_gpu=True):  # as cell_task runs cells
            assert os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
            assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
            runs.mark_latest(grid.run_dir(cell))  # what train() and the tools call
            return FakeTraining()(grid, cell, attempt)

    before = dict(os.environ)
    run(grid_file, tmp_path / "out", task)
    assert not (tmp_path / "out" / "cells" / "latest").exists()
    assert dict(os.environ) == before  # restored after each cell


def test_executor_ray_without_ray_says_how_to_install(grid_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ModuleNotFoundError
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, ["--grid", str(grid_file), "--executor", "ray"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -c constraints.txt -e ".[ray]"' in err


def test_jobs_picks_the_executor():
    assert isinstance(make_executor("local", 1, Resources()), Sequential)
    pool = make_executor("local", 2, Resources())
    assert isinstance(pool, ProcessPool) and pool.slots == 2
    with pytest.raises(UsageError, match="--jobs must be at least 1"):
        make_executor("local", 0, Resources())


@pytest.mark.parametrize(
    "section,expected",
    [
        ("[resources]\ngpus_per_cell = 0.5\ncpus_per_cell = 2", Resources(cpus=2, gpus=0.5)),
        ("", Resources(cpus=None, gpus=0)),
        ("[resources]\ngpu_per_cell = 1", "[resources] has unknown key(s) gpu_per_cell"),
        ("[resources]\ncpus_per_cell = 0", "cpus_per_cell must be a number > 0, not 0"),
        ("[resources]\ngpus_per_cell = -1", "gpus_per_cell must be a number >= 0, not -1"),
        ('[resources]\ngpus_per_cell = "one"', "gpus_per_cell must be a number >= 0"),
    ],
)
def test_resources_section(tmp_path, section, expected):
    path = tmp_path / "grid.toml"
    path.write_text(GRID + section + "\n")
    if isinstance(expected, Resources):
        assert load_grid(path).resources == expected
    else:
        with pytest.raises(GridError, match=re.escape(expected)):
            load_grid(path)

"""``--executor ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``), against the
sequential executor on the same tiny grid: 2 models × (float, bnn) + an INQ tool cell each,
1 epoch on 200 images. A worker killed mid-cell is retried and the table comes out the
same; a grid interrupted on the driver resumes without re-running its finished cells.

Ray is an optional extra; without it these tests skip (see README, Compare)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray", reason='Ray is an optional extra: pip install -c constraints.txt -e ".[ray]"'
)

from pipeline import runs  # noqa: E402
from pipeline.compare import executors, schedule  # noqa: E402
from pipeline.compare.cli import RESULTS_MD, main  # noqa: E402
from pipeline.compare.grid import RESULTS_CSV, load_grid, read_csv  # noqa: E402

GRID = """
name = "tiny"
models = ["lenet5", "mlp1024"]
datasets = ["mnist"]
export = false
[methods]
bnn = [1]
inq = { bits = [4], args = ["--epochs-per-step", "1", "--train-samples", "200"] }
[resources]
cpus_per_cell = 1  # the same TensorFlow threads on every executor: the same weights
[train]
epochs = 1
batch_size = 50
train_samples = 200
test_samples = 100
"""
ROOT = Path(__file__).resolve().parents[3]
SAME = ["dataset", "model", "method", "bits", "accuracy", "float_accuracy", "delta_pt"]


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def cluster():
    executors.hide_broken_pyarrow()
    executors.use_this_checkout()  # what RayCluster does when it starts a Ray itself
    ray.init(num_cpus=2, **executors.RAY_INIT)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sequential(grid_file):
    """The default executor, as a command: in a fresh process, TensorFlow still takes the
    grid's thread count (this test process may have started TensorFlow already)."""
    out = grid_file.parent / "sequential"
    command = [sys.executable, "-m", "pipeline.compare", "--grid", str(grid_file),
               "--out", str(out), "--quiet"]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def table(out):
    """results.csv without what differs run to run (times, paths) and results.md's tables."""
    rows = [{k: r[k] for k in SAME} for r in read_csv(out / RESULTS_CSV)]
    return rows, (out / RESULTS_MD).read_text().split("\n## ", 1)[1]


class Killer(threading.Thread):
    """SIGKILLs the Ray worker of the first cell it catches mid-run, once. The worker is
    stopped (SIGSTOP) first and killed only if the cell has no result yet, so the kill
    always lands inside the cell, never between cells."""

    def __init__(self, grid):
        super().__init__(daemon=True)
        self.grid, self.killed, self.stop = grid, None, threading.Event()

    def run(self):
        while self.killed is None and not self.stop.is_set():
            for cell in self.grid.cells():
                run = self.grid.run_dir(cell)
                try:
                    pid = runs.read_json(run.file(schedule.WORKER_FILE))["pid"]
                except Exception:
                    continue
                if pid == os.getpid() or run.has_result():
                    continue
                os.kill(pid, signal.SIGSTOP)
                if run.has_result():
                    os.kill(pid, signal.SIGCONT)
                    continue
                os.kill(pid, signal.SIGKILL)
                self.killed = cell
                return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def killed_run(cluster, grid_file):
    out = grid_file.parent / "ray-killed"
    killer = Killer(load_grid(grid_file, out=out))
    killer.start()
    argv = ["--grid", str(grid_file), "--out", str(out), "--quiet", "--executor", "ray"]
    try:
        code = main([*argv, "--retries", "1"])
    finally:
        killer.stop.set()
    return {"out": out, "code": code, "killed": killer.killed, "grid": killer.grid}


def test_a_killed_worker_is_retried_and_the_table_matches_sequential(killed_run, sequential):
    assert killed_run["code"] == 0
    cell = killed_run["killed"]
    assert cell is not None, "no cell was caught running"
    worker = runs.read_json(killed_run["grid"].run_dir(cell).file(schedule.WORKER_FILE))
    assert worker["attempt"] == 2 and worker["pid"] != os.getpid()  # a Ray worker ran it
    assert table(killed_run["out"]) == table(sequential)
    md = (killed_run["out"] / RESULTS_MD).read_text()
    assert "Failed cells" not in md and "--executor ray" in md


def test_an_interrupted_ray_grid_resumes_without_rerunning_finished_cells(
    cluster, grid_file, sequential, monkeypatch
):
    out = grid_file.parent / "ray-interrupted"
    argv = ["--grid", str(grid_file), "--out", str(out), "--quiet", "--executor", "ray"]
    real_write = schedule.write_csv
    writes = []

    def ctrl_c_after_two_cells(path, rows):  # the driver is interrupted as the 2nd cell lands
        real_write(path, rows)
        writes.append(len(rows))
        if len(writes) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(schedule, "write_csv", ctrl_c_after_two_cells)
        with pytest.raises(KeyboardInterrupt):
            main(argv)
    grid = load_grid(grid_file, out=out)
    finished = [c for c in grid.cells() if grid.run_dir(c).has_result()]
    assert 2 <= len(finished) < len(grid.cells())
    stamps = {c.name: [grid.run_dir(c).file(n).stat().st_mtime_ns
                       for n in (runs.RESULT, schedule.WORKER_FILE)] for c in finished}  # fmt: skip
    assert main(argv) == 0
    assert all(grid.run_dir(c).has_result() for c in grid.cells())
    assert stamps == {c.name: [grid.run_dir(c).file(n).stat().st_mtime_ns
                               for n in (runs.RESULT, schedule.WORKER_FILE)]
                      for c in finished}  # fmt: skip
    assert table(out) == table(sequential)

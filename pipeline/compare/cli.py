"""``python -m pipeline.compare --grid GRID.toml``: run a comparison grid, write its tables.

Each cell (model × method × bits × dataset) is an ordinary run under ``OUT/cells/``:
trained (or quantized by a tool from the float cell), exported, optionally benchmarked.
Finished cells are skipped, so rerunning the same command resumes an interrupted grid.
``OUT/`` receives ``results.csv``, ``results.md`` (tables like seed 004's 7–10) and the
plots ``accuracy_vs_bits.png`` and ``accuracy_vs_size.png``. See :mod:`pipeline.compare.grid`
for the grid file format.

Cells run one after another in this process by default; ``--jobs N`` runs N at a time in
worker processes, ``--executor ray`` as Ray tasks on a cluster (:mod:`pipeline.compare.schedule`).
A cell that fails is retried ``--retries`` times, then reported in ``results.md``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import cli, runs
from pipeline.compare.grid import RESULTS_CSV, finished_rows, load_grid, results_markdown, write_csv
from pipeline.errors import BitliteError, UsageError

if TYPE_CHECKING:
    from pipeline.compare.executors import Executor
    from pipeline.compare.grid import Grid

RESULTS_MD = "results.md"
BITS_PNG = "accuracy_vs_bits.png"
SIZE_PNG = "accuracy_vs_size.png"


def make_parser():
    p = cli.parser("python -m pipeline.compare", __doc__.split("\n\n")[0])
    p.add_argument("--grid", type=Path, required=True, help="grid file (TOML)")
    p.add_argument("--out", type=Path, help="output directory (default: the grid's 'out')")
    p.add_argument("--check", action="store_true", help="validate the grid, list its cells, exit")
    p.add_argument("--report", action="store_true",
                   help="only rewrite results.md and the plots from the cells finished so far")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where cells run: this machine, or Ray tasks on a Ray cluster")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None,
                   help="cells at a time: local, worker processes (1 = in this process); "
                        "ray, at most this many in flight (default: local 1, ray no limit)")  # fmt: skip
    p.add_argument("--address", help="--executor ray: the cluster (auto, HOST:6379; "
                                     "default: start a local Ray)")  # fmt: skip
    p.add_argument("--retries", type=int, default=0,
                   help="attempts after a cell's first fails (exception, killed worker)")  # fmt: skip
    return p


def write_report(grid, rows, command: str, failed: dict[str, str] | None = None) -> list[Path]:
    """results.md and the plots for ``rows``; returns the files written."""
    from pipeline.compare import plots

    md = grid.out / RESULTS_MD
    runs.write_bytes(md, results_markdown(grid, rows, command, failed).encode())
    if not rows:  # every cell failed: the table says why, there is nothing to plot
        return [md]
    written = [grid.out / RESULTS_CSV, md, plots.accuracy_vs_bits(rows, grid.out / BITS_PNG)]
    size_plot = plots.accuracy_vs_size(rows, grid.out / SIZE_PNG)
    return written + ([size_plot] if size_plot else [])


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    pool = None if args.check or args.report else start_pool(args)
    try:  # with a pool, a worker reads and checks the grid: see start_pool
        grid = (load_grid(args.grid, out=args.out) if pool is None
                else pool.submit(load_grid, args.grid, args.out).result())  # fmt: skip
    except BaseException:
        if pool is not None:
            pool.shutdown(cancel=True)
        raise
    cells = grid.cells()
    if args.check:
        for cell in cells:
            state = "done" if grid.run_dir(cell).has_result() else "to run"
            print(f"{cell.name:48s} {state}")
        print(f"{len(cells)} cells, valid")
        return 0
    if args.report:
        rows = finished_rows(grid)
        if not rows:
            raise UsageError(f"no finished cells under {grid.out}: run the grid first")
        write_csv(grid.out / RESULTS_CSV, rows)
        failed: dict[str, str] = {}
    else:
        from pipeline.compare.schedule import run_grid

        executor = pool or make_executor(args, grid)  # a missing Ray: exit 2, saying how
        outcome = run_grid(grid, executor, retries=args.retries, progress=not args.quiet)
        rows, failed = outcome.rows, outcome.failed
    command = "python -m pipeline.compare " + shlex.join(argv if argv is not None else _argv())
    for path in write_report(grid, rows, command, failed):
        print(f"wrote {path}")
    if failed:
        raise BitliteError(f"{len(failed)} of {len(cells)} cells failed (see {RESULTS_MD}); "
                           "rerun the command to retry them")  # fmt: skip
    return 0


def make_executor(args: argparse.Namespace, grid: Grid) -> Executor:
    from pipeline.compare.executors import make_executor as make

    if args.retries < 0:
        raise UsageError(f"--retries must be at least 0, not {args.retries}")
    jobs = args.jobs if args.jobs is not None else (0 if args.executor == "ray" else 1)
    return make(args.executor, jobs, grid.resources, args.address)


def start_pool(args: argparse.Namespace) -> Executor | None:
    """``--jobs N`` on this machine: the worker pool, started first, so that one of its
    workers reads and checks the grid. Checking imports TensorFlow (every model's module),
    which the workers need anyway and this process then never does: on a small machine
    the driver's import would take a core from the workers for seconds. None for other
    executors and for arguments make_executor refuses."""
    if args.executor != "local" or (args.jobs or 1) < 2 or args.address or args.retries < 0:
        return None
    from pipeline.compare.executors import ProcessPool

    pool = ProcessPool(args.jobs)
    pool.start()
    return pool


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    cli.run(main)

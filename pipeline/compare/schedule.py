"""Running a grid's cells on an executor: order, dependencies, retries, resume, progress.

The driver (:func:`run_grid`) decides; an executor (:mod:`pipeline.compare.executors`)
only runs :func:`cell_task` calls. A cell is submitted once the cell it starts from (its
float cell, for tools and ``init = "float"``) has finished, and never twice at the same
time, so one cell's directory has one writer. A failed attempt is submitted again up to
``retries`` times; then the cell is failed, the cells that start from it fail with it, and
everything else still runs. Cells complete from an earlier run are not submitted at all.

A worker writes only inside its cell's directory (every file atomically,
:mod:`pipeline.runs`): ``worker.json`` when an attempt starts (host, pid, attempt), then the
run itself. The driver alone writes ``OUT/results.csv``, after every finished cell.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import resource
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipeline
from pipeline import runs
from pipeline.compare.executors import CellFailed, Executor, threads_per_cell
from pipeline.compare.grid import RESULTS_CSV, Cell, Grid, result_row, run_cell, write_csv
from pipeline.errors import UsageError

WORKER_FILE = "worker.json"
SCHEDULE_FILE = "schedule.json"  # OUT/: this run's attempts, where and when each cell ran
POLL_S = 1.0  # how often the progress bar looks for started cells


@dataclass(frozen=True)
class Attempt:
    """What the driver sends with a cell: which try this is and how to run it."""

    number: int
    token: str  # unique per attempt: worker.json names it, so the driver sees this one start
    threads: int | None  # TensorFlow threads; None leaves TensorFlow's default
    progress: bool  # per-epoch bars (only in this process: workers' bars would interleave)
    worker: bool = False  # a worker process, one cell at a time: tools run in it


@dataclass(frozen=True)
class Finished:
    """A cell's successful attempt, as its worker reports it."""

    host: str
    pid: int
    started: float  # time.time() in the worker
    ended: float
    notes: tuple[str, ...] = ()  # what the cell logged (resumed, parity warnings)
    cpu_s: float = 0.0  # CPU time the cell took, its tool's subprocess included: unlike
    # ended - started, other jobs on the machine do not inflate it


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # fmt: skip
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cell_task(grid: Grid, cell: Cell, attempt: Attempt) -> Finished:
    """Run one cell (train or tool, export, bench) in whatever process this is."""
    started, cpu = time.time(), cpu_seconds()
    run = grid.run_dir(cell)
    runs.write_json(run.file(WORKER_FILE), {
        "host": socket.gethostname(), "pid": os.getpid(), "attempt": attempt.number,
        "token": attempt.token, "started": started,
        "bitlite": str(Path(pipeline.__file__).parent),  # which checkout a node imported
    })  # fmt: skip
    notes: list[str] = []
    with cell_environment(attempt.threads, share_gpu=0 < grid.resources.gpus < 1):
        try:
            run_cell(grid, cell, run, attempt.progress, notes.append, tool_here=attempt.worker)
        except Exception as err:  # KeyboardInterrupt is not caught: Ctrl-C stops the grid
            raise CellFailed(f"{type(err).__name__}: {err}") from None
    return Finished(socket.gethostname(), os.getpid(), started, time.time(), tuple(notes),
                    cpu_seconds() - cpu)  # fmt: skip


@contextlib.contextmanager
def cell_environment(threads: int | None, share_gpu: bool = False) -> Iterator[None]:
    """Environment for one cell, also seen by the tool it may start as a subprocess:
    its TensorFlow thread count, and GPU memory taken as needed when cells share a GPU
    (TensorFlow otherwise takes all of it at once). (Cells never write a ``latest`` link
    beside them, which parallel cells would share: runs outside ``runs/`` write none.)"""
    values: dict[str, str] = {}
    if threads is not None:  # read by TensorFlow when it first starts its thread pools
        values |= {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}
    if share_gpu:
        values["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Outcome:
    """What a grid run ended with: rows of every finished cell, errors of failed ones."""

    rows: list[dict[str, Any]]
    failed: dict[str, str]  # cell name -> error (after its last attempt)
    kept: list[str] = field(default_factory=list)  # complete before this run
    finished: dict[str, Finished] = field(default_factory=dict)  # ran in this run
    retried: dict[str, list[str]] = field(default_factory=dict)  # name -> errors retried
    submitted: dict[str, float] = field(default_factory=dict)  # name -> time.time()
    received: dict[str, float] = field(default_factory=dict)


Task = Callable[[Grid, Cell, Attempt], Finished]


class Schedule:
    """The driver's state for one grid run; :meth:`run` is the loop."""

    def __init__(self, grid: Grid, executor: Executor, retries: int, progress: bool,
                 log: Callable[[str], None], task: Task) -> None:  # fmt: skip
        self.grid, self.executor, self.retries, self.task = grid, executor, retries, task
        self.log = log
        self.cells = grid.cells()
        self.waiting = [c for c in self.cells if not grid.is_complete(c)]
        done = [c.name for c in self.cells if c not in self.waiting]
        self.outcome = Outcome(rows=[], failed={}, kept=done)
        self.done = set(done)
        self.attempts: dict[str, int] = {}
        self.running: dict[cf.Future, tuple[Cell, Attempt]] = {}
        self.threads = threads_per_cell(executor, grid.resources)
        # Per-epoch bars only when cells run here, one at a time.
        self.cell_progress = progress and executor.in_process
        self.bar = ProgressBar(len(self.cells), len(done), executor.name, progress, log)

    def run(self) -> Outcome:
        if self.outcome.kept:
            self.log(f"{len(self.outcome.kept)} of {len(self.cells)} cells complete: kept")
        self.write_rows()
        self.executor.start()
        try:
            while self.waiting or self.running:
                self.submit_ready()
                if not self.running:  # nothing can start: the rest wait on failed cells
                    break
                finished, _ = cf.wait(self.running, timeout=POLL_S,
                                      return_when=cf.FIRST_COMPLETED)  # fmt: skip
                for future in finished:
                    self.collect(future)
                self.bar.update(self.started(), len(self.outcome.failed))
        except BaseException:  # Ctrl-C: stop scheduling; finished cells are on disk already
            self.executor.shutdown(cancel=True)
            self.bar.close()
            raise
        self.executor.shutdown()
        self.bar.close()
        for cell in self.waiting:  # never started: the cell they start from failed
            source = self.grid.source(cell)
            self.outcome.failed[cell.name] = f"not run: {source.name if source else '?'} failed"
        runs.write_json(self.grid.out / SCHEDULE_FILE, self.record())
        return self.outcome

    def record(self) -> dict[str, Any]:
        """Each cell this run submitted: attempts, where it ran, the driver's and the
        worker's clocks (their difference is what scheduling cost), its error if it failed."""
        o = self.outcome
        cells: dict[str, Any] = {}
        for name, attempts in self.attempts.items():
            entry: dict[str, Any] = {"attempts": attempts, "submitted": o.submitted.get(name),
                                     "received": o.received.get(name),
                                     "retried": o.retried.get(name, [])}  # fmt: skip
            if name in o.finished:
                f = o.finished[name]
                entry.update(host=f.host, pid=f.pid, started=f.started, ended=f.ended,
                             cpu_s=f.cpu_s)  # fmt: skip
            if name in o.failed:
                entry["error"] = o.failed[name]
            cells[name] = entry
        return {"executor": self.executor.name, "threads_per_cell": self.threads,
                "kept": o.kept, "cells": cells}  # fmt: skip

    def urgency(self, cell: Cell) -> tuple[int, int]:
        """Sort key, most urgent first: cells others start from (their dependents wait),
        then tool cells (several training steps: the longest), then the rest — longest
        first keeps every worker busy until the end instead of leaving one long cell last."""
        dependents = sum(1 for c in self.waiting if self.grid.source(c) == cell)
        return (-dependents, 0 if cell.tool else 1)

    def ready(self, cell: Cell) -> bool:
        source = self.grid.source(cell)
        return source is None or source.name in self.done

    def submit_ready(self) -> None:
        ready = [c for c in self.waiting if self.ready(c)]
        if self.executor.slots > 1:  # one slot: the grid's own order (the total is the same)
            ready.sort(key=self.urgency)
        for cell in ready:
            if len(self.running) >= self.executor.slots:
                return
            self.waiting.remove(cell)
            number = self.attempts[cell.name] = self.attempts.get(cell.name, 0) + 1
            attempt = Attempt(number, uuid.uuid4().hex, self.threads, self.cell_progress,
                              worker=not self.executor.in_process)  # fmt: skip
            self.outcome.submitted[cell.name] = time.time()
            self.running[self.executor.submit(self.task, self.grid, cell, attempt)] = (
                cell, attempt)  # fmt: skip
            self.bar.update(self.started(), len(self.outcome.failed))

    def collect(self, future: cf.Future) -> None:
        cell, attempt = self.running.pop(future)
        self.outcome.received[cell.name] = time.time()
        error = future.exception()
        if error is None:
            self.succeeded(cell, future.result())
        elif attempt.number <= self.retries:
            message = self.executor.describe(error)
            self.outcome.retried.setdefault(cell.name, []).append(message)
            self.log(f"{cell.name}: attempt {attempt.number} failed ({message}); retrying")
            self.waiting.insert(0, cell)  # first in line: its dependents wait on it
        else:
            self.failed(cell, self.executor.describe(error))

    def succeeded(self, cell: Cell, finished: Finished) -> None:
        if not self.grid.run_dir(cell).has_result():  # the worker wrote it somewhere else
            self.failed(cell, f"finished on {finished.host}, but {self.grid.run_dir(cell).path} "
                              "has no result here: OUT must be one shared path on every node")  # fmt: skip
            return
        self.done.add(cell.name)
        self.outcome.finished[cell.name] = finished
        for note in finished.notes:
            self.log(f"{cell.name}: {note}")
        self.bar.cell_done(cell.name)
        self.write_rows()

    def failed(self, cell: Cell, error: str) -> None:
        self.outcome.failed[cell.name] = error
        self.log(f"{cell.name}: failed: {error}")
        self.bar.cell_done(None)

    def write_rows(self) -> None:
        """results.csv with every finished cell (and its float baseline), in grid order."""
        rows = [result_row(self.grid, c, self.grid.run_dir(c)) for c in self.cells
                if c.name in self.done and self.grid.baseline(c).name in self.done]  # fmt: skip
        self.outcome.rows = rows
        if rows:
            write_csv(self.grid.out / RESULTS_CSV, rows)

    def started(self) -> int:
        """Cells in flight whose worker has begun this attempt (not merely queued)."""
        count = 0
        for cell, attempt in self.running.values():
            path = self.grid.run_dir(cell).file(WORKER_FILE)
            with contextlib.suppress(UsageError):  # not started yet (no file, or stale)
                count += runs.read_json(path).get("token") == attempt.token
        return count


class ProgressBar:
    """One bar over the grid's cells — settled (done or failed) of all, how many are
    running and failed, tqdm's ETA. Without a bar (``--quiet``) each finished cell is one
    log line."""

    def __init__(self, total: int, done: int, executor: str, show: bool,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.log, self.bar = log, None
        self.shown = (-1, -1)
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit="cell", desc=f"grid ({executor})",
                            dynamic_ncols=True)  # fmt: skip

    def update(self, running: int, failed: int) -> None:
        if self.bar is not None and (running, failed) != self.shown:  # a log file gets a
            self.shown = (running, failed)  # line per change, not one per poll
            self.bar.set_postfix(running=running, failed=failed)

    def cell_done(self, name: str | None) -> None:
        """A cell settled: ``name`` finished, or (None) one failed for good."""
        if self.bar is not None:
            self.bar.update(1)
        elif name is not None:
            self.log(f"{name}: done")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_grid(grid: Grid, executor: Executor, retries: int = 0, progress: bool = True,
             log: Callable[[str], None] | None = None, task: Task | None = None) -> Outcome:  # fmt: skip
    """Run every cell not complete yet on ``executor``; returns the rows and failures.

    ``grid.out`` is made absolute first: workers resolve paths against their own working
    directory, which on another node is not this one."""
    grid.out = grid.out.resolve()
    if log is None:
        log = _tqdm_write if progress else print
    return Schedule(grid, executor, retries, progress, log, task or cell_task).run()


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)

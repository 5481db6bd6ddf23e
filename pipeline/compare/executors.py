"""Where a grid's cells run: this process, a local process pool, or a Ray cluster.

An executor only runs functions. :mod:`pipeline.compare.schedule` decides which cell runs
when (float cells before the cells that start from them), retries and records failures;
it hands an executor one call at a time and waits on the :class:`~concurrent.futures.Future`
it gets back. So the three differ only in where the call runs:

- :class:`Sequential` — in this process, one after another (the default).
- :class:`ProcessPool` — ``--jobs N`` processes on this machine.
- :class:`RayCluster` — ``--executor ray``: one Ray task per call, with the grid's
  ``[resources]`` (CPUs, GPUs) as the task's resources.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.compare.grid import Resources
from pipeline.errors import BitliteError, UsageError

RAY_VERSION = "2.58.0"  # the version pyproject's `ray` extra pins
RAY_MISSING = ('--executor ray needs Ray: pip install -c constraints.txt -e ".[ray]" '
               f"(ray=={RAY_VERSION})")  # fmt: skip


# ray.init arguments every driver needs (tests that start Ray themselves pass them too):
# workers need hide_broken_pyarrow before Ray deserializes anything in them, and a cell's
# output comes back as its result or error, not as interleaved worker logs.
RAY_INIT: dict[str, Any] = {
    "runtime_env": {"worker_process_setup_hook": f"{__name__}.hide_broken_pyarrow"},
    "include_dashboard": False,
    "log_to_driver": False,
}


class CellFailed(Exception):
    """A cell's error as one picklable line, whatever raised it in the worker (TensorFlow's
    exceptions do not all survive pickling back to the driver)."""


class Executor(ABC):
    """Runs calls somewhere and returns futures; :attr:`slots` calls may be in flight."""

    name: str = ""
    slots: int = 1
    in_process = False  # calls run in the driver's process (their output is the driver's)

    def start(self) -> None:  # noqa: B027  (optional: most executors need no set-up)
        """Acquire workers (a pool, a cluster connection) before the first submit."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        """Start ``fn(*args)``; its result or exception arrives through the future."""

    def shutdown(self, cancel: bool = False) -> None:  # noqa: B027
        """Release the workers; with ``cancel``, stop the calls still running."""

    @staticmethod
    def describe(error: BaseException) -> str:
        """One line for a failed call: the cell's own message when it is a CellFailed."""
        return str(error) if isinstance(error, CellFailed) else f"{type(error).__name__}: {error}"


class Sequential(Executor):
    """Runs each call at once, in this process: submit returns a finished future. Ctrl-C
    (KeyboardInterrupt) is not caught, so it stops the grid where it is."""

    name = "sequential"
    in_process = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # a cell's failure is the schedule's to handle
            future.set_exception(err)
        return future


class ProcessPool(Executor):
    """``jobs`` worker processes on this machine. Workers are reused from cell to cell, so
    TensorFlow is imported once per worker, not once per cell."""

    name = "process pool"

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self._pool: cf.ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start every worker now (idempotent); each imports what cells need (warm_up)
        before its first task: the command line starts the pool before anything else."""
        if self._pool is not None:
            return
        # spawn, not fork: the driver has TensorFlow loaded, whose threads fork cannot copy.
        self._pool = cf.ProcessPoolExecutor(
            self.slots, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up
        )
        for _ in range(self.slots):  # each submit finds no idle worker and spawns one
            self._pool.submit(os.getpid)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        assert self._pool is not None, "start() first"
        try:
            return self._pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:  # a worker was killed (OOM): a fresh pool
            self.shutdown(cancel=True)
            self.start()
            return self._pool.submit(fn, *args)

    def shutdown(self, cancel: bool = False) -> None:
        if self._pool is None:
            return
        if cancel:  # the public API cannot stop running calls; end the workers themselves
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self._pool = None

    @staticmethod
    def describe(error: BaseException) -> str:
        if isinstance(error, cf.process.BrokenProcessPool):  # the pool then stops every
            # worker, so the cells running beside the one that died fail with it
            return "a worker process died (killed, or out of memory); the pool restarted"
        return Executor.describe(error)


class RayCluster(Executor):
    """One Ray task per call on a Ray cluster: a local one started here, or the cluster at
    ``address`` (``auto``, ``HOST:6379``). Each task asks for the grid's resources; Ray
    sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it grants. Ray's own retries are off: the
    schedule retries, so every attempt of a cell is visible and counted the same way."""

    name = "ray"

    def __init__(self, resources: Resources, address: str | None = None,
                 slots: int | None = None) -> None:  # fmt: skip
        self.resources = resources
        self.address = address
        self.slots = slots or sys.maxsize  # all ready cells: queued tasks drive autoscaling
        self._ray: Any = None
        self._remote: dict[Callable[..., Any], Any] = {}  # one export per function, not per call
        self._refs: list[Any] = []
        self._started_ray = False

    def start(self) -> None:
        ray = import_ray()
        hide_broken_pyarrow()
        if not ray.is_initialized():  # else: the caller's ray.init(**RAY_INIT, ...) holds
            if self.address is None:
                use_this_checkout()
            try:
                ray.init(address=self.address, **RAY_INIT)
            except (ConnectionError, RuntimeError) as err:  # no cluster at that address
                where = f"at {self.address}" if self.address else "on this machine"
                raise BitliteError(f"cannot start or reach Ray {where}: {err}") from None
            self._started_ray = True
        self._ray = ray

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(fn).options(
                num_cpus=self.resources.cpus or 1, num_gpus=self.resources.gpus,
                max_retries=0, retry_exceptions=False,
            )  # fmt: skip
        ref = self._remote[fn].remote(*args)
        self._refs.append(ref)
        return ref.future()

    def shutdown(self, cancel: bool = False) -> None:
        if self._ray is None:
            return
        if cancel:  # force: end the worker, so a cell stops at its last checkpoint
            for ref in self._refs:
                with contextlib.suppress(Exception):  # finished already: nothing to cancel
                    self._ray.cancel(ref, force=True)
        if self._started_ray:
            self._ray.shutdown()
        self._ray = None

    @staticmethod
    def describe(error: BaseException) -> str:
        cause = getattr(error, "cause", None)  # RayTaskError wraps the cell's exception
        if isinstance(cause, BaseException):
            return Executor.describe(cause)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"{type(error).__name__}: {first}"  # WorkerCrashedError, OutOfMemoryError


def warm_up() -> None:
    """A new worker's first act: import TensorFlow, Keras, larq, the trainer, the models and
    the tools, a few seconds that would otherwise fall inside its first cell. Imports start
    no TensorFlow runtime, so the thread count a cell sets still applies."""
    import importlib

    from pipeline.compare.grid import TOOLS

    # A module that fails to import here fails the cell that needs it, with its own error.
    with contextlib.suppress(Exception):
        from models.registry import model_names

        model_names()  # imports every architecture module
        for module in ("pipeline.train.trainer", "pipeline.methods", *TOOLS.values()):
            importlib.import_module(module)


def use_this_checkout() -> None:
    """Put the checkout this process runs on the ``PYTHONPATH`` that a Ray started here
    passes to its workers, as spawned ``--jobs`` workers inherit it: they then run this
    code, even where ``bitlite`` is not installed or is installed from another checkout."""
    import pipeline

    checkout = str(Path(pipeline.__file__).resolve().parents[1])
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if checkout not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([checkout, *filter(None, paths)])


def import_ray() -> Any:
    """``ray``, or a UsageError (exit 2) that says how to install it."""
    try:
        import ray
    except ModuleNotFoundError:
        raise UsageError(RAY_MISSING) from None
    return ray


def hide_broken_pyarrow() -> None:
    """Make an unimportable pyarrow look absent. Ray imports pyarrow when it is installed,
    to register serializers, and tolerates only its absence; the lock's pyarrow (pulled in
    by tensorflow-datasets) needs numpy 2, which bitlite's TensorFlow cannot take."""
    if "pyarrow" in sys.modules:
        return
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        pass
    except ImportError:
        sys.modules["pyarrow"] = None  # type: ignore[assignment]  (import now raises ModuleNotFoundError)


def make_executor(name: str, jobs: int, resources: Resources,
                  address: str | None = None) -> Executor:  # fmt: skip
    """The executor the command line asks for: ``local`` with ``jobs`` 1 runs in this
    process, with more a process pool; ``ray`` runs Ray tasks (``jobs``: at most that
    many cells in flight, 0 for no limit)."""
    if jobs < 0 or (name == "local" and jobs < 1):
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if name == "ray":
        import_ray()
        return RayCluster(resources, address, slots=jobs or None)
    if address is not None:
        raise UsageError("--address is for --executor ray")
    if jobs == 1:
        return Sequential()
    return ProcessPool(jobs)


def threads_per_cell(executor: Executor, resources: Resources) -> int | None:
    """TensorFlow CPU threads for one cell.

    The grid's ``cpus_per_cell`` when it sets one, on every executor: TensorFlow's sums
    split by thread count, so equal threads are what make a cell's weights the same
    wherever it runs. Otherwise TensorFlow's default (all cores) in this process; this
    machine's cores shared among the pool's workers (N workers of all-core TensorFlow
    slow one another down); one on Ray, which grants a task one CPU by default.
    """
    if resources.cpus is not None:
        return max(1, round(resources.cpus))
    if isinstance(executor, RayCluster):
        return 1
    if isinstance(executor, ProcessPool):
        return max(1, (os.cpu_count() or 1) // executor.slots)
    return None

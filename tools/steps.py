"""The output run of a tool: filled one step at a time, checkpointed, resumable.

``OUT/`` is an ordinary run directory (see :mod:`pipeline.runs`): ``config.json`` copies the
source run's training and data sections (so export and evaluation find the same test
set) and adds ``tool`` (what was done: tool, bits, schedule, order, levels, source run);
``metrics.csv`` has one row per step; ``model.keras`` and ``result.json`` appear at the
end. After every step the model goes to ``checkpoint.keras`` and the tool's own arrays
(INQ's masks) to ``tool_state.npz`` before ``state.json`` names the step, each write
atomic, so a crash leaves a consistent checkpoint and the same command continues it.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import pipeline
from pipeline import data, runs
from pipeline.errors import UsageError

TOOL_STATE = "tool_state.npz"


@dataclass
class Job:
    """A tool's output run and how far it has got."""

    run: runs.Run
    source: runs.Run
    settings: dict[str, Any]
    total: int = 0  # steps in all (set by the tool once it knows the model)
    step: int = 0  # completed steps
    state: dict[str, Any] = field(default_factory=dict)  # JSON state saved with each step
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def done(self) -> bool:
        return self.run.has_result()

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, out: Path, source: runs.Run, settings: dict[str, Any], resume: bool) -> Job:
        """A new output run in ``out``, or the unfinished one there made with ``settings``."""
        run = runs.Run(Path(out).resolve())
        if run.path == source.path:
            raise UsageError("--out must differ from --run (the source run is never modified)")
        if not run.file(runs.CONFIG).exists():
            if resume:
                raise UsageError(f"nothing to resume: {run.path} holds no run")
            return cls(run, source, settings)
        recorded = run.config().get("tool")
        if recorded is None:
            raise UsageError(f"{run.path} holds another kind of run; choose another --out")
        differ = [k for k, v in settings.items() if recorded.get(k) != _jsonable(v)]
        if differ:
            was = ", ".join(f"{k}={recorded.get(k)!r}" for k in differ)
            raise UsageError(f"{run.path} holds a run made with {was}; "
                             "repeat that command to resume it, or use another --out")  # fmt: skip
        job = cls(run, source, settings)
        if run.file(runs.STATE).exists():
            job.state = runs.read_json(run.file(runs.STATE))
            job.step = int(job.state["step"])
            if job.step and run.file(TOOL_STATE).exists():
                with np.load(run.file(TOOL_STATE)) as npz:
                    job.arrays = {k: npz[k] for k in npz.files}
        return job

    def begin(self, tool_config: dict[str, Any]) -> None:
        """Write ``config.json`` for a new run (``tool_config`` extends the settings)."""
        src = self.source.config()
        self.run.path.mkdir(parents=True, exist_ok=True)
        bits = {**src.get("method", {}).get("bits", {}), "w": self.settings["bits"]}
        self.run.write_config({
            "train": src["train"],  # how the source was trained: same data, subset and seed
            "data": src["data"],
            "method": {"name": self.settings["tool"], "bits": bits, "source": src.get("method")},
            "tool": {**self.settings, **tool_config, "source_run": str(self.source.path)},
            "bitlite_version": pipeline.__version__,
        })  # fmt: skip
        runs.mark_latest(self.run)

    def tool_config(self) -> dict[str, Any]:
        return self.run.config()["tool"]

    # -- data and models ---------------------------------------------------------------
    def load_data(self) -> Any:
        from tools.retrain import Data

        ds = data.load_run_data(self.source.config()["train"])
        # Retraining may use a random subset of the training images; the test set is the
        # source run's own, so accuracies compare with the float run's.
        ds = ds.subset(self.settings.get("train_samples"), None, seed=self.settings["seed"])
        return Data(data.normalize(ds.x_train), ds.y_train, data.normalize(ds.x_test), ds.y_test)

    def load_model(self) -> Any:
        """The last checkpoint, or the source run's trained model before the first step.

        It is compiled afresh (the tools train with their own loop): the saved model then
        carries no optimizer state, and ``model.evaluate`` works on it downstream.
        """
        import tensorflow as tf

        model = self.run.load_model(runs.CHECKPOINT) if self.step else self.source.load_model()
        model.compile(
            optimizer=tf.keras.optimizers.Adam(),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    # -- steps -------------------------------------------------------------------------
    def checkpoint(self, model: Any, row: dict[str, Any], arrays: dict[str, np.ndarray],
                   state: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Record a finished step: model, arrays, metrics row, then the step number."""
        self.step += 1
        self.state = {**self.state, **(state or {}), "step": self.step}
        self.run.save_model(model, runs.CHECKPOINT)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        runs.write_bytes(self.run.file(TOOL_STATE), buf.getvalue())
        rows = [r for r in self.run.metrics() if int(r["step"]) < self.step]
        self.run.write_metrics([*rows, {"step": self.step, **row}])
        runs.write_json(self.run.file(runs.STATE), self.state)

    def finish(self, model: Any, data: Any, epochs: int) -> runs.Run:
        """Save the final model and ``result.json`` (accuracy and its change from float)."""
        from tools.retrain import evaluate

        accuracy, loss = evaluate(model, data)
        source = float(self.state["source_test_accuracy"])
        elapsed = sum(float(r.get("step_time_s", 0)) for r in self.run.metrics())
        self.run.save_model(model)
        self.run.write_result({
            "test_accuracy": accuracy,
            "test_loss": loss,
            "source_test_accuracy": source,
            "delta_pt": round((accuracy - source) * 100, 4),
            "bits": self.settings["bits"],
            "steps": self.step,
            "epochs": epochs,
            "train_time_s": round(elapsed, 2),
            "params": int(model.count_params()),
        })  # fmt: skip
        return self.run


StepHook = Callable[[Job, dict[str, Any], Any], None]  # (job, metrics row, model) per step


def print_step(job: Job, row: dict[str, Any], model: Any) -> None:
    """The CLIs' progress line: step k of n, what was quantized, accuracy before/after."""
    what = (f"{float(row['fixed_fraction']):.1%} of weights fixed" if "fixed_fraction" in row
            else f"{row['layer']} quantized")  # fmt: skip
    print(f"step {job.step}/{job.total}: {what}: test accuracy "
          f"{float(row['quantized_accuracy']):.4f} quantized -> "
          f"{float(row['test_accuracy']):.4f} retrained", flush=True)  # fmt: skip


def print_result(run: runs.Run) -> None:
    r = run.result()
    print(f"test accuracy {r['test_accuracy']:.4f} ({r['delta_pt']:+.2f} pt vs float "
          f"{r['source_test_accuracy']:.4f}) -> {run.path}")  # fmt: skip


def training_settings(
    epochs_per_step: int, learning_rate: float, batch_size: int, seed: int,
    train_samples: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The retraining settings every tool records in ``config.json`` (checked)."""
    if train_samples is not None and train_samples < 1:
        raise UsageError("--train-samples must be at least 1")
    if epochs_per_step < 1:
        raise UsageError("--epochs-per-step must be at least 1")
    if not learning_rate > 0:
        raise UsageError("--lr must be positive")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    return {"epochs_per_step": epochs_per_step, "learning_rate": learning_rate,
            "batch_size": batch_size, "seed": seed, "train_samples": train_samples}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every tool takes."""
    p.add_argument("--run", help="the trained float run (default: the latest under runs/)")
    p.add_argument("--bits", type=int, required=True, help="weight bits")
    p.add_argument("--epochs-per-step", type=int, default=2, help="retraining epochs per step")
    p.add_argument("--lr", type=float, default=1e-4,
                   help="Adam learning rate, cosine-decayed within each step")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-samples", type=int,
                   help="retrain on a random subset of this many training images")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output run directory")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every tool function takes, from :func:`add_arguments`' options."""
    return {"epochs_per_step": args.epochs_per_step, "learning_rate": args.lr,
            "batch_size": args.batch_size, "seed": args.seed,
            "train_samples": args.train_samples, "resume": args.resume,
            "progress": not args.quiet, "on_step": print_step}  # fmt: skip


def _jsonable(value: Any) -> Any:
    """What ``value`` reads back as from config.json (tuples become lists)."""
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value

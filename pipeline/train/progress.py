"""Training callbacks: a progress bar and the per-epoch checkpoint that makes runs resumable."""

from __future__ import annotations

import sys
import time
from typing import Any

import tensorflow as tf
from tqdm.auto import tqdm

from pipeline import runs


class ProgressBar(tf.keras.callbacks.Callback):
    """One tqdm bar per epoch, with loss/accuracy; quieter when not on a terminal."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        total = self.params.get("steps")
        self.bar = tqdm(
            total=total,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="batch",
            leave=True,
            mininterval=0.5 if sys.stderr.isatty() else 15,
        )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(1)
        if logs and batch % 20 == 0:
            self.bar.set_postfix(
                loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.3f}", refresh=False
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and "val_accuracy" in logs:
            self.bar.set_postfix(
                loss=f"{logs['loss']:.3f}",
                acc=f"{logs['accuracy']:.3f}",
                test_acc=f"{logs['val_accuracy']:.4f}",
            )
        self.bar.close()


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """After each epoch: append metrics.csv, save model + optimizer, record the epoch.

    The checkpoint is written before ``state.json`` names its epoch, both atomically, so
    a crash at any point leaves a consistent pair.
    """

    def __init__(self, run: runs.Run) -> None:
        super().__init__()
        self.run = run
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rows = [r for r in self.run.metrics() if int(r["epoch"]) <= epoch]
        rows.append(
            {
                "epoch": epoch + 1,
                "loss": f"{logs.get('loss', float('nan')):.6f}",
                "accuracy": f"{logs.get('accuracy', float('nan')):.6f}",
                "test_loss": f"{logs.get('val_loss', float('nan')):.6f}",
                "test_accuracy": f"{logs.get('val_accuracy', float('nan')):.6f}",
                "epoch_time_s": f"{time.perf_counter() - self.started:.2f}",
            }
        )
        self.run.save_model(self.model, runs.CHECKPOINT)
        self.run.write_metrics(rows)
        runs.write_json(self.run.file(runs.STATE), {"epoch": epoch + 1})

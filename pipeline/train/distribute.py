"""``--strategy``: where training runs — one device, all local devices, or many machines.

- ``default``: TensorFlow's default strategy (one device; the GPU if there is one).
- ``mirrored``: :class:`tf.distribute.MirroredStrategy`, synchronous data parallelism
  over every local GPU (or every logical CPU device). The batch size stays the global
  batch, split across replicas, so results do not depend on the device count.
- ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`. Run the same
  command on every machine with ``TF_CONFIG`` describing the cluster; the chief
  (worker 0) writes the run directory, the others write to a scratch directory.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from pipeline.errors import UsageError

STRATEGIES = ("default", "mirrored", "multiworker")


def check_strategy(name: str) -> None:
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")


def make_strategy(name: str) -> tf.distribute.Strategy:
    check_strategy(name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """Whether this process writes results: the chief, or worker 0 of a chief-less cluster
    (TensorFlow's convention); a process without ``TF_CONFIG`` is alone, so it is."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task") or {"type": "chief"}
    if task["type"] == "chief":
        return True
    chiefless = "chief" not in config.get("cluster", {})
    return task["type"] == "worker" and int(task.get("index", 0)) == 0 and chiefless

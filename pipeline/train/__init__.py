"""Stage 1, train: a method × model × dataset in, a run directory out.

In: a :class:`TrainConfig` (CLI flags, or a grid cell); models from :mod:`models`, methods
from :mod:`pipeline.methods`, data from :mod:`pipeline.data`. Out: ``runs/NAME/`` with
``config.json``, ``metrics.csv``, ``checkpoint.keras``, ``model.keras`` and
``result.json`` (see :mod:`pipeline.runs`).

- :mod:`~pipeline.train.trainer` — the training loop, resume and the CLI
- :mod:`~pipeline.train.distribute` — one training over several devices or workers
- :mod:`~pipeline.train.progress` — progress bar and per-epoch checkpoints
- :mod:`~pipeline.train.warmstart` — start from another run's weights
"""

from pipeline.train.trainer import TrainConfig, main, resume, train

__all__ = ["TrainConfig", "main", "resume", "train"]

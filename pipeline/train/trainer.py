"""``python -m pipeline.train``: quantization-aware training into a run directory.

With no arguments it trains the default — a binarized LeNet-5 (BNN) on full MNIST — and
writes ``runs/<name>/`` (see :mod:`pipeline.runs`). Every finished epoch is checkpointed,
so an interrupted run loses at most the epoch in progress: ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import models
import pipeline
from pipeline import cli, data, runs
from pipeline.errors import UsageError

DEFAULTS = {"model": "lenet5", "method": "bnn", "dataset": "mnist"}


@dataclass
class TrainConfig:
    """Everything that determines a training run; written to ``config.json``."""

    model: str = DEFAULTS["model"]
    method: str = DEFAULTS["method"]
    dataset: str = DEFAULTS["dataset"]
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float | None = None  # None: the method's default
    seed: int = 0
    method_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    train_samples: int | None = None  # a random subset, for quick runs and tests
    test_samples: int | None = None
    augment: str = "none"  # pipeline.data.augment: none | flip | crop_flip
    strategy: str = "default"  # pipeline.train.distribute: default | mirrored | multiworker
    weight_decay: float = 0.0  # decoupled, per step: w -= lr · weight_decay · w
    lr_boundaries: list[int] = field(default_factory=list)  # epochs; replaces the schedule
    lr_decay: float = 0.1  # the learning rate is multiplied by this at each boundary
    init_from: str | None = None  # a run directory whose final weights start this run

    def validate(self) -> None:
        from pipeline.methods import check_name as check_method

        _check_types(self)  # grid files and config.json bypass argparse's type=int
        models.check_name(self.model)
        check_method(self.method)
        data.check_name(self.dataset)
        for name in ("epochs", "batch_size", "train_samples", "test_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if any(b < 1 for b in self.lr_boundaries) or self.lr_boundaries != sorted(
            set(self.lr_boundaries)
        ):
            raise UsageError("--lr-boundaries must be increasing epochs, each at least 1")
        if not 0 < self.lr_decay <= 1 or self.weight_decay < 0:
            raise UsageError("--lr-decay must be in (0, 1] and --weight-decay at least 0")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError("--lr must be positive")
        from pipeline.data.augment import check_augment
        from pipeline.train.distribute import check_strategy

        check_augment(self.augment)
        check_strategy(self.strategy)
        init = self.init_from
        if init is not None and not runs.resolve(init).file(runs.MODEL).exists():
            raise UsageError(f"--init-from {self.init_from}: that run has not finished training")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


_INT, _NUMBER, _TEXT = (int,), (int, float), (str,)
FIELD_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {  # name -> (types, None allowed)
    "model": (_TEXT, False), "method": (_TEXT, False), "dataset": (_TEXT, False),
    "epochs": (_INT, False), "batch_size": (_INT, False), "learning_rate": (_NUMBER, True),
    "seed": (_INT, False), "method_options": ((dict,), False), "data_dir": (_TEXT, True),
    "train_samples": (_INT, True), "test_samples": (_INT, True), "augment": (_TEXT, False),
    "strategy": (_TEXT, False), "weight_decay": (_NUMBER, False),
    "lr_boundaries": ((list,), False), "lr_decay": (_NUMBER, False), "init_from": (_TEXT, True),
}  # fmt: skip
_TYPE_WORDS = {_INT: "an integer", _NUMBER: "a number", _TEXT: "a string",
               (dict,): "a table", (list,): "a list of integers"}  # fmt: skip


def _check_types(config: TrainConfig) -> None:
    """Reject ``epochs = "3"`` or ``lr_decay = true`` with the setting's name (bool is an
    int to Python, never to a user)."""
    for name, (types, nullable) in FIELD_TYPES.items():
        value = getattr(config, name)
        if value is None and nullable:
            continue
        ok = isinstance(value, types) and not isinstance(value, bool)
        if ok and name == "lr_boundaries":
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            raise UsageError(f"{name} must be {_TYPE_WORDS[types]}, got {value!r}")


def default_run_dir(config: TrainConfig, root: Path = runs.DEFAULT_ROOT) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = config.dataset.replace("folder:", "folder-").replace("/", "_")
    return root / f"{config.model}-{config.method}-{dataset}-{stamp}"


def load_data(config: TrainConfig) -> data.Dataset:
    return data.load_run_data(asdict(config))


def build(config: TrainConfig, ds: data.Dataset, steps_per_epoch: int):
    """Build and compile the model for ``config`` (a fresh one, not a checkpoint)."""
    import tensorflow as tf

    from pipeline.methods import make_method

    method = make_method(config.method, **config.method_options)
    tf.keras.utils.set_random_seed(config.seed)
    model = method.wrap_model(models.build_model(config.model, method, ds.input_shape, ds.num_classes))
    lr = config.learning_rate or method.learning_rate
    total = steps_per_epoch * config.epochs
    if config.lr_boundaries:  # step decay at the given epochs (seed 004 tables 5–6)
        values = [lr * config.lr_decay**i for i in range(len(config.lr_boundaries) + 1)]
        bounds = [b * steps_per_epoch for b in config.lr_boundaries]
        lr = tf.keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)
    elif method.lr_schedule == "cosine":
        lr = tf.keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.01)
    elif method.lr_schedule == "exponential":  # BinaryNet's schedule: ×0.01 over the run
        lr = tf.keras.optimizers.schedules.ExponentialDecay(lr, total, decay_rate=0.01)
    if config.init_from:
        from pipeline.train.warmstart import copy_weights

        copy_weights(runs.resolve(config.init_from).load_model(), model)
    optimizer = method.optimizer(lr)
    if config.weight_decay:
        optimizer.weight_decay = config.weight_decay  # Keras 2 optimizers apply it decoupled
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model, method


def train(config: TrainConfig, out: Path | None = None, progress: bool = True) -> runs.Run:
    """Train ``config`` into a new run directory and return it."""
    config.validate()
    from pipeline.train import distribute

    if not distribute.is_chief():  # other workers of a multi-worker run write to scratch
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="bitlite-worker-"))
    run = runs.Run((out or default_run_dir(config)).resolve())
    if run.file(runs.CONFIG).exists():
        raise UsageError(f"{run.path} already holds a run; use --resume or another --out")
    if run.path.exists() and not run.path.is_dir():
        raise UsageError(f"--out {run.path} is a file, not a directory")
    # Data and model first: a missing dataset, a bad option or an unreadable --init-from
    # leaves no run directory behind.
    ds = load_data(config)
    steps = math.ceil(ds.train_size / config.batch_size)
    with distribute.make_strategy(config.strategy).scope():
        model, method = build(config, ds, steps)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(_full_config(config, method, ds))
    runs.mark_latest(run)
    return _fit(run, config, ds, model, method, initial_epoch=0, progress=progress)


def resume(run: runs.Run, progress: bool = True) -> runs.Run:
    """Continue ``run`` from its last checkpoint with its saved configuration."""
    if run.has_result():
        raise UsageError(f"{run.path} is already complete ({runs.RESULT} exists)")
    config = TrainConfig.from_dict(run.config()["train"])
    ds = load_data(config)
    steps = math.ceil(ds.train_size / config.batch_size)
    from pipeline.train.distribute import make_strategy

    with make_strategy(config.strategy).scope():
        if run.file(runs.CHECKPOINT).exists():
            from pipeline.methods import make_method

            model = run.load_model(runs.CHECKPOINT)
            method = make_method(config.method, **config.method_options)
            epoch = int(runs.read_json(run.file(runs.STATE))["epoch"])
        else:  # interrupted before the first epoch finished
            model, method = build(config, ds, steps)
            epoch = 0
    runs.mark_latest(run)
    return _fit(run, config, ds, model, method, initial_epoch=epoch, progress=progress)


def _full_config(config: TrainConfig, method: Any, ds: data.Dataset) -> dict[str, Any]:
    return {
        "train": asdict(config),
        "method": method.config(),
        "data": {
            **ds.metadata(),
            "source": ds.source,
            "train_samples": ds.train_size,
            "test_samples": ds.test_size,
        },
        "bitlite_version": pipeline.__version__,
    }


def _fit(run, config, ds, model, method, initial_epoch: int, progress: bool) -> runs.Run:
    import tensorflow as tf

    from pipeline.train.autograph import skip_libraries
    from pipeline.train.progress import EpochCheckpoint, ProgressBar

    skip_libraries()  # Keras 2's training loop is not rewritten again in every process
    tf.get_logger().setLevel("ERROR")  # autograph notes about larq internals are noise

    from pipeline.data.augment import eval_pipeline, train_pipeline

    train_ds = train_pipeline(ds, config.batch_size, config.seed, config.augment)
    test_ds = eval_pipeline(ds, 1024)
    callbacks = [EpochCheckpoint(run), *method.callbacks()]
    if progress:
        callbacks.append(ProgressBar(config.epochs))
    start = time.perf_counter()
    if initial_epoch < config.epochs:
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            validation_data=test_ds,
            callbacks=callbacks,
            verbose=0,
        )
    extra = method.finalize(model)
    if method.recalibrate_bn:  # on the final network: the result and model.keras are these
        extra["batch_norm_recalibration"] = _recalibrate_bn(model, ds, test_ds)
    loss, accuracy = model.evaluate(test_ds, verbose=0)
    run.save_model(model)
    elapsed = sum(float(r.get("epoch_time_s", 0)) for r in run.metrics())
    result = {
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "epochs": config.epochs,
        "train_time_s": round(elapsed, 2),
        "session_time_s": round(time.perf_counter() - start, 2),
        "params": int(model.count_params()),
        **extra,
    }
    run.write_result(result)
    for warning in extra.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return run


def _recalibrate_bn(model, ds: data.Dataset, test_ds) -> dict[str, Any]:
    """Re-estimate batch-norm statistics on the first training images (exact, so doing it
    again on a resumed run's checkpoint gives the same statistics)."""
    from pipeline.layers.recalibrate import BN_SAMPLES, recalibrate_batch_norm

    before = model.evaluate(test_ds, verbose=0)[1]
    x = data.normalize(ds.x_train[:BN_SAMPLES])
    layers = recalibrate_batch_norm(model, x)
    return {"layers": layers, "images": len(x), "test_accuracy_before": float(before)}


# -- command line ----------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    p = cli.parser("python -m pipeline.train", __doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULTS["model"], help="architecture (--list-models)")
    p.add_argument(
        "--method", default=DEFAULTS["method"], help="quantization method (--list-methods)"
    )
    p.add_argument(
        "--dataset",
        default=DEFAULTS["dataset"],
        help="mnist | fashion_mnist | cifar10 | folder:DIR",
    )
    p.add_argument("--data-dir", help="read the dataset from this directory")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, help="initial learning rate (default: the method's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wbits", type=int, help="weight bits, for methods that take a bit width")
    p.add_argument("--abits", type=int, help="activation bits, likewise")
    p.add_argument("--gbits", type=int, help="gradient bits, likewise (DoReFa)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other method hyper-parameter, e.g. --option quantize_first=false",
    )
    p.add_argument("--augment", default="none", help="none | flip | crop_flip (CIFAR)")
    p.add_argument("--strategy", default="default", help="default | mirrored | multiworker")
    p.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay")
    p.add_argument(
        "--lr-boundaries",
        type=int,
        nargs="*",
        default=[],
        metavar="EPOCH",
        help="multiply the learning rate by --lr-decay at these epochs",
    )
    p.add_argument("--lr-decay", type=float, default=0.1)
    p.add_argument("--init-from", help="start from this run's final weights (e.g. a float run)")
    p.add_argument("--train-samples", type=int, help="train on a random subset of this size")
    p.add_argument("--test-samples", type=int, help="evaluate on a random subset of this size")
    p.add_argument("--out", type=Path, help="run directory (default: runs/<model>-<method>-…)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default: the latest) from its last epoch",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--list-methods", action="store_true", help="list methods and exit")
    p.add_argument("--list-models", action="store_true", help="list models and exit")
    return p


def parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--option expects KEY=VALUE, got '{text}'")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    options = dict(parse_option(o) for o in args.option)
    for bits in ("wbits", "abits", "gbits"):
        if getattr(args, bits) is not None:
            options[bits] = getattr(args, bits)
    config = TrainConfig(
        model=args.model,
        method=args.method,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        method_options=options,
        data_dir=args.data_dir,
        train_samples=args.train_samples,
        test_samples=args.test_samples,
        augment=args.augment,
        strategy=args.strategy,
        weight_decay=args.weight_decay,
        lr_boundaries=args.lr_boundaries,
        lr_decay=args.lr_decay,
        init_from=args.init_from,
    )
    config.validate()
    from pipeline.methods import make_method

    make_method(config.method, **options)  # reject bad options before loading data
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.list_methods:
        from pipeline.methods import describe

        for name, summary, paper in describe():
            print(f"{name:26s} {summary}" + (f"  [{paper}]" if paper else ""))
        return 0
    if args.list_models:

        print("\n".join(models.model_names()))
        return 0
    if args.resume:
        run = resume(runs.resolve(args.out), progress=not args.quiet)
    else:
        run = train(config_from_args(args), out=args.out, progress=not args.quiet)
    result = run.result()
    print(
        f"test accuracy {result['test_accuracy']:.4f} after {result['epochs']} epochs "
        f"({result['train_time_s']:.0f} s) -> {run.path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)

"""``python -m pipeline.train``: quantization-aware training into a run directory.

With no arguments it trains the default — a binarized LeNet-5 (BNN) on full MNIST — and
writes ``runs/<name>/`` (see :mod:`pipeline.runs`). Every finished epoch is checkpointed,
so an interrupted run loses at most the epoch in progress: ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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

    def validate(self) -> None:
        from models.registry import check_name as check_model
        from pipeline.methods import check_name as check_method

        check_model(self.model)
        check_method(self.method)
        data.check_name(self.dataset)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError("--lr must be positive")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def default_run_dir(config: TrainConfig, root: Path = runs.DEFAULT_ROOT) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = config.dataset.replace("folder:", "folder-").replace("/", "_")
    return root / f"{config.model}-{config.method}-{dataset}-{stamp}"


def load_data(config: TrainConfig) -> data.Dataset:
    ds = data.load_dataset(config.dataset, Path(config.data_dir) if config.data_dir else None)
    return ds.subset(config.train_samples, config.test_samples, seed=config.seed)


def build(config: TrainConfig, ds: data.Dataset, steps_per_epoch: int):
    """Build and compile the model for ``config`` (a fresh one, not a checkpoint)."""
    import tensorflow as tf

    from models import build_model
    from pipeline.methods import make_method

    method = make_method(config.method, **config.method_options)
    tf.keras.utils.set_random_seed(config.seed)
    model = method.wrap_model(build_model(config.model, method, ds.input_shape, ds.num_classes))
    lr = config.learning_rate or method.learning_rate
    total = steps_per_epoch * config.epochs
    if method.lr_schedule == "cosine":
        lr = tf.keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.01)
    elif method.lr_schedule == "exponential":  # BinaryNet's schedule: ×0.01 over the run
        lr = tf.keras.optimizers.schedules.ExponentialDecay(lr, total, decay_rate=0.01)
    model.compile(
        optimizer=method.optimizer(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model, method


def train(config: TrainConfig, out: Path | None = None, progress: bool = True) -> runs.Run:
    """Train ``config`` into a new run directory and return it."""
    config.validate()
    run = runs.Run((out or default_run_dir(config)).resolve())
    if run.file(runs.CONFIG).exists():
        raise UsageError(f"{run.path} already holds a run; use --resume or another --out")
    run.path.mkdir(parents=True, exist_ok=True)
    ds = load_data(config)  # before anything is written: a missing dataset leaves no run
    steps = math.ceil(len(ds.x_train) / config.batch_size)
    model, method = build(config, ds, steps)
    run.write_config(_full_config(config, method, ds))
    runs.mark_latest(run)
    return _fit(run, config, ds, model, method, initial_epoch=0, progress=progress)


def resume(run: runs.Run, progress: bool = True) -> runs.Run:
    """Continue ``run`` from its last checkpoint with its saved configuration."""
    if run.has_result():
        raise UsageError(f"{run.path} is already complete ({runs.RESULT} exists)")
    config = TrainConfig.from_dict(run.config()["train"])
    ds = load_data(config)
    steps = math.ceil(len(ds.x_train) / config.batch_size)
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
            "train_samples": len(ds.x_train),
            "test_samples": len(ds.x_test),
        },
        "bitlite_version": pipeline.__version__,
    }


def _fit(run, config, ds, model, method, initial_epoch: int, progress: bool) -> runs.Run:
    import tensorflow as tf

    from pipeline.progress import EpochCheckpoint, ProgressBar

    tf.get_logger().setLevel("ERROR")  # autograph notes about larq internals are noise

    x_train, x_test = data.normalize(ds.x_train), data.normalize(ds.x_test)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, ds.y_train))
        .shuffle(len(x_train), seed=config.seed)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    callbacks = [EpochCheckpoint(run), *method.callbacks()]
    if progress:
        callbacks.append(ProgressBar(config.epochs))
    start = time.perf_counter()
    if initial_epoch < config.epochs:
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            validation_data=(x_test, ds.y_test),
            validation_batch_size=1024,
            callbacks=callbacks,
            verbose=0,
        )
    extra = method.finalize(model)
    loss, accuracy = model.evaluate(x_test, ds.y_test, batch_size=1024, verbose=0)
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
    return run


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
        from models import model_names

        print("\n".join(model_names()))
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

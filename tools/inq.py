"""``python -m tools.inq``: Incremental Network Quantization of a trained float run.

INQ (Zhou et al., ICLR 2017, arXiv:1702.03044): each conv/dense kernel gets its own
power-of-two levels ``P = {±2^n1, …, ±2^n2, 0}`` from its largest weight (eqs. 2–3, see
:mod:`pipeline.quantizers.po2`). Then, for each cumulative fraction of the schedule
(default 50 %, 75 %, 87.5 %, 100 %): in every layer the largest-magnitude weights not yet
fixed are fixed until that fraction is, each rounded to the nearest level in ``P``
(eq. 4), and the weights still float are retrained with the fixed ones' gradients masked
to zero (eq. 5), so fixed weights never move. After the last step every weight is in
``P``. ``--bits 2`` gives ternary ``{-2^n1, 0, 2^n1}``.

Batch normalization (the paper does not say how it is handled): after every
projection and every retraining, each batch-norm layer's moving mean and variance are
re-estimated on training images
(:func:`pipeline.layers.recalibrate.recalibrate_batch_norm`); weights, biases, γ and β are
untouched, so the fixed weights stay exactly as eq. 4 set them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline import cli, runs
from pipeline.errors import UsageError
from tools import steps
from tools.steps import Job

DEFAULT_SCHEDULE = (0.5, 0.75, 0.875, 1.0)


def inq_partition(weights: np.ndarray, free: np.ndarray, fraction: float) -> np.ndarray:
    """INQ's pruning-inspired partition: the new mask of still-float weights (True = free).

    Of the weights still free, the largest in magnitude are fixed until ``fraction`` of
    the layer is fixed (ties broken by position, so the result is deterministic).
    """
    flat_free = free.reshape(-1).astype(bool)
    size = flat_free.size
    target = size if fraction >= 1.0 else round(fraction * size)
    todo = max(0, target - int(size - flat_free.sum()))
    candidates = np.flatnonzero(flat_free)
    magnitude = np.abs(weights.reshape(-1)[candidates])
    chosen = candidates[np.argsort(-magnitude, kind="stable")[:todo]]
    new_free = flat_free.copy()
    new_free[chosen] = False
    return new_free.reshape(free.shape)


def check_schedule(schedule: Sequence[float]) -> tuple[float, ...]:
    schedule = tuple(float(s) for s in schedule)
    if not schedule or schedule[-1] != 1.0:
        raise UsageError("--schedule must end at 1.0 (every weight quantized)")
    increasing = all(a < b for a, b in zip(schedule, schedule[1:], strict=False))
    if not increasing or schedule[0] <= 0:
        raise UsageError("--schedule must be increasing fractions in (0, 1], e.g. 0.5,0.75,1.0")
    return schedule


def inq(
    source: runs.Run,
    out: Path,
    bits: int,
    schedule: Sequence[float] = DEFAULT_SCHEDULE,
    epochs_per_step: int = 2,
    learning_rate: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    train_samples: int | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: steps.StepHook | None = None,
) -> runs.Run:
    """Run INQ on ``source``'s model into ``out`` (continuing it if it is unfinished)."""
    from pipeline.layers.recalibrate import BN_SAMPLES, recalibrate_batch_norm
    from pipeline.quantizers.po2 import po2_project
    from tools import projections
    from tools.retrain import evaluate, quantizable_layers, retrain

    projections.get("po2").check_bits(bits)
    schedule = check_schedule(schedule)
    settings = {"tool": "inq", "quantizer": "po2", "bits": bits, "schedule": list(schedule),
                "batch_norm": "re-estimated after every projection and retraining",
                **steps.training_settings(epochs_per_step, learning_rate, batch_size, seed,
                                          train_samples)}  # fmt: skip
    job = Job.open(out, source, settings, resume)
    job.total = len(schedule)
    if job.done:
        return job.run
    model = job.load_model()
    layers = quantizable_layers(model)
    data = job.load_data()
    if job.step == 0:
        levels = {layer.name: projections.get("po2").fit(layer.kernel.numpy(), bits)
                  for layer in layers}  # fmt: skip
        job.begin({"layers": [layer.name for layer in layers], "levels": levels})
        job.state["source_test_accuracy"] = evaluate(model, data)[0]
    levels = job.tool_config()["levels"]
    free = {layer.name: job.arrays.get(layer.name, np.ones(layer.kernel.shape, bool))
            for layer in layers}  # fmt: skip

    for k in range(job.step, len(schedule)):
        started = time.perf_counter()
        for layer in layers:
            w, was_free = layer.kernel.numpy(), free[layer.name]
            free[layer.name] = inq_partition(w, was_free, schedule[k])
            q = po2_project(w, levels[layer.name]["n1"], levels[layer.name]["n2"]).numpy()
            layer.kernel.assign(np.where(was_free & ~free[layer.name], q, w))  # only the new
        recalibrate_batch_norm(model, data.x_train[:BN_SAMPLES])
        quantized_accuracy = evaluate(model, data)[0]
        stats = retrain(
            model, data, epochs=epochs_per_step if schedule[k] < 1.0 else 0,
            learning_rate=learning_rate, batch_size=batch_size, seed=seed + k,
            masks={id(layer.kernel): free[layer.name].astype(np.float32) for layer in layers},
            desc=f"INQ step {k + 1}/{len(schedule)}", progress=progress,
        )  # fmt: skip
        # Retraining's moving averages lag its last updates, and the last step has no
        # retraining at all: the statistics would be those of the float weights.
        recalibrate_batch_norm(model, data.x_train[:BN_SAMPLES])
        accuracy, loss = evaluate(model, data)
        row = {"fixed_fraction": schedule[k], "quantized_accuracy": f"{quantized_accuracy:.6f}",
               "test_accuracy": f"{accuracy:.6f}", "test_loss": f"{loss:.6f}",
               "train_loss": f"{stats.get('loss', float('nan')):.6f}",
               "train_accuracy": f"{stats.get('accuracy', float('nan')):.6f}",
               "step_time_s": f"{time.perf_counter() - started:.2f}"}  # fmt: skip
        job.checkpoint(model, row, arrays=free)
        if on_step:
            on_step(job, row, model)
    return job.finish(model, data, epochs=(len(schedule) - 1) * epochs_per_step)


# -- command line ----------------------------------------------------------------------


def parse_schedule(text: str) -> tuple[float, ...]:
    try:
        return check_schedule([float(s) for s in text.split(",") if s.strip()])
    except ValueError:
        raise UsageError(f"--schedule expects comma-separated fractions, got '{text}'") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m tools.inq", __doc__.split("\n\n")[0].split(": ", 1)[1])
    steps.add_arguments(p)
    p.add_argument("--schedule", default=",".join(map(str, DEFAULT_SCHEDULE)),
                   help="cumulative fractions fixed at each step")  # fmt: skip
    args = p.parse_args(argv)
    run = inq(runs.resolve(args.run), args.out, args.bits, parse_schedule(args.schedule),
              **steps.common_kwargs(args))  # fmt: skip
    steps.print_result(run)
    return 0


if __name__ == "__main__":
    cli.run(main)

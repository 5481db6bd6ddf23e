"""``python -m tools.progressive``: layer-wise progressive quantization of a trained float run.

Seed 004's method (§4, figs. 8–9): starting from a trained float network, quantize the
conv/dense layers one at a time from the input side to the output side; after each
layer is quantized it is frozen and the layers not yet quantized are retrained
(normalization layers stay float and keep training), until every layer is quantized.
Seed 004 truncated weights to its grid and blames its −1 to −10 pt losses on that
(§6.1.2, §6.2); here every projection rounds to the *nearest* level of a grid fitted to
the layer when it is quantized (``--quantizer``, see :mod:`tools.projections`).

``--order output-first`` reverses the order, for comparison. ``--all-at-once`` is seed
004's "simple quantization" (§3.2): every layer is quantized at once and the float
weights are trained through the projection (straight-through estimator) for as many
epochs as the progressive schedule retrains in all, then snapped to the grid.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import cli, runs
from pipeline.errors import UsageError
from tools import projections, steps
from tools.steps import Job

ORDERS = ("input-first", "output-first", "all-at-once")


def ordered(layers: list[Any], order: str) -> list[Any]:
    """The layers in the order they are quantized (``layers`` runs input to output)."""
    return layers[::-1] if order == "output-first" else list(layers)


def progressive(
    source: runs.Run,
    out: Path,
    quantizer: str,
    bits: int,
    order: str = "input-first",
    epochs_per_step: int = 2,
    learning_rate: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    train_samples: int | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: steps.StepHook | None = None,
) -> runs.Run:
    """Quantize ``source``'s model layer by layer (or all at once) into ``out``."""
    from tools.retrain import evaluate, quantizable_layers

    projection = projections.get(quantizer)
    projection.check_bits(bits)
    if order not in ORDERS:
        raise UsageError(f"unknown order '{order}'; choose one of: {', '.join(ORDERS)}")
    settings = {"tool": "progressive", "quantizer": quantizer, "bits": bits, "order": order,
                **steps.training_settings(epochs_per_step, learning_rate, batch_size, seed,
                                          train_samples)}  # fmt: skip
    job = Job.open(out, source, settings, resume)
    if job.done:
        return job.run
    model = job.load_model()
    layers = ordered(quantizable_layers(model), order)
    job.total = 1 if order == "all-at-once" else len(layers)
    data = job.load_data()
    if job.step == 0:
        job.begin({"layers": [layer.name for layer in layers]})
        job.state["source_test_accuracy"] = evaluate(model, data)[0]
        job.state["levels"] = {}
    train = {"learning_rate": learning_rate, "batch_size": batch_size, "progress": progress}
    # The all-at-once baseline trains as many epochs as the progressive schedule does.
    retrain_epochs = (len(layers) - 1) * epochs_per_step
    if order == "all-at-once":
        if job.step == 0:
            _all_at_once(job, model, layers, projection, bits, data,
                         epochs=max(1, retrain_epochs), seed=seed, **train)  # fmt: skip
            if on_step:
                on_step(job, job.run.metrics()[-1], model)
        return job.finish(model, data, epochs=max(1, retrain_epochs))
    for k in range(job.step, len(layers)):
        _quantize_layer(job, model, layers, k, projection, bits, data,
                        epochs=epochs_per_step, seed=seed + k, **train)  # fmt: skip
        if on_step:
            on_step(job, job.run.metrics()[-1], model)
    return job.finish(model, data, epochs=retrain_epochs)


def _quantize_layer(job: Job, model: Any, layers: list[Any], k: int, projection: Any, bits: int,
                    data: Any, *, epochs: int, seed: int, **train: Any) -> None:  # fmt: skip
    """Step ``k``: quantize ``layers[k]``, freeze layers ``0..k``, retrain the rest."""
    from tools.retrain import evaluate, layer_variables, retrain

    started = time.perf_counter()
    layer = layers[k]
    params = projection.fit(layer.kernel.numpy(), bits)
    layer.kernel.assign(projection.project(layer.kernel, params, bits))
    quantized_accuracy = evaluate(model, data)[0]
    frozen = [v for done in layers[: k + 1] for v in layer_variables(done)]
    last = k == len(layers) - 1  # nothing float left to retrain but normalization
    stats = retrain(model, data, epochs=0 if last else epochs, seed=seed, frozen=frozen,
                    desc=f"step {k + 1}/{len(layers)}", **train)  # fmt: skip
    accuracy, loss = evaluate(model, data)
    row = _row(layer.name, quantized_accuracy, accuracy, loss, stats, started)
    levels = {**job.state["levels"], layer.name: params}
    job.checkpoint(model, row, arrays={}, state={"levels": levels})


def _all_at_once(job: Job, model: Any, layers: list[Any], projection: Any, bits: int, data: Any,
                 *, epochs: int, seed: int, **train: Any) -> None:  # fmt: skip
    """Seed 004's simple quantization: every kernel through the projection at once (STE)."""
    from tools.retrain import evaluate, retrain

    started = time.perf_counter()
    params = {layer.name: projection.fit(layer.kernel.numpy(), bits) for layer in layers}
    floats = {layer.name: layer.kernel.numpy() for layer in layers}
    for layer in layers:  # the accuracy of plain round-to-nearest, before any training
        layer.kernel.assign(projection.project(layer.kernel, params[layer.name], bits))
    quantized_accuracy = evaluate(model, data)[0]
    for layer in layers:
        layer.kernel.assign(floats[layer.name])

    def through(name: str) -> Any:
        return lambda w: projection.project(w, params[name], bits)

    ste = [(layer.kernel, through(layer.name)) for layer in layers]
    stats = retrain(model, data, epochs=epochs, seed=seed, ste=ste,
                    desc="all layers (STE)", **train)  # fmt: skip
    for layer in layers:
        layer.kernel.assign(projection.project(layer.kernel, params[layer.name], bits))
    accuracy, loss = evaluate(model, data)
    row = _row("all", quantized_accuracy, accuracy, loss, stats, started)
    job.checkpoint(model, row, arrays={}, state={"levels": params})


def _row(layer: str, quantized_accuracy: float, accuracy: float, loss: float,
         stats: dict[str, float], started: float) -> dict[str, Any]:  # fmt: skip
    return {"layer": layer, "quantized_accuracy": f"{quantized_accuracy:.6f}",
            "test_accuracy": f"{accuracy:.6f}", "test_loss": f"{loss:.6f}",
            "train_loss": f"{stats.get('loss', float('nan')):.6f}",
            "train_accuracy": f"{stats.get('accuracy', float('nan')):.6f}",
            "step_time_s": f"{time.perf_counter() - started:.2f}"}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m tools.progressive", __doc__.split("\n\n")[0].split(": ", 1)[1])
    steps.add_arguments(p)
    names = ", ".join(projections.PROJECTIONS)
    p.add_argument("--quantizer", default="po2", help=f"weight levels: {names}")
    p.add_argument("--order", default="input-first", choices=ORDERS[:2],
                   help="which side is quantized first")  # fmt: skip
    p.add_argument("--all-at-once", action="store_true",
                   help="seed 004's simple quantization baseline (all layers, STE)")  # fmt: skip
    args = p.parse_args(argv)
    run = progressive(
        runs.resolve(args.run), args.out, args.quantizer, args.bits,
        order="all-at-once" if args.all_at_once else args.order, **steps.common_kwargs(args),
    )  # fmt: skip
    steps.print_result(run)
    return 0


if __name__ == "__main__":
    cli.run(main)

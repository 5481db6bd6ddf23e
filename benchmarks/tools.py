"""Tools-stage benchmark: float vs INQ vs layer-wise progressive vs all-at-once, LeNet-5.

For each dataset: train (or reuse) a float LeNet-5 run, then INQ at 5/4/3/2 bits,
progressive input-first at 5/4 bits and the all-at-once baseline at 5/4 bits, all from that
run and with the same retraining settings. Every cell is an ordinary run directory under
``--root``; finished cells are reused and unfinished ones resume, so rerunning the command
continues. Prints a markdown table (and writes it with ``--table``).

    python -m benchmarks.tools --datasets mnist,fashion_mnist --root runs/bench \\
        --epochs-per-step 1 --train-samples 6000 --table benchmarks/results/tools_lenet5.md
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.table import write_table
from pipeline import cli, runs

# (label, tool, quantizer, bits, order)
CELLS: list[tuple[str, str, str, int, str]] = [
    *[(f"INQ {b}-bit", "inq", "po2", b, "") for b in (5, 4, 3, 2)],
    *[(f"progressive {b}-bit", "progressive", "po2", b, "input-first") for b in (5, 4)],
    *[(f"all-at-once {b}-bit", "progressive", "po2", b, "all-at-once") for b in (5, 4)],
]


def priority(cell: tuple[str, str, str, int, str]) -> tuple[int, int]:
    """Run order when time is short: 5-bit cells of each kind first, then 4, 2, 3."""
    return (
        (5, 4, 2, 3).index(cell[3]),
        ("inq", "input-first", "all-at-once").index(cell[4] or "inq"),
    )


def cell_dir(root: Path, dataset: str, tool: str, bits: int, order: str) -> Path:
    name = "inq" if tool == "inq" else order
    return root / dataset / f"{name}-{bits}bit"


def float_run(root: Path, dataset: str, epochs: int) -> runs.Run:
    from pipeline.train.trainer import TrainConfig, resume, train

    out = root / dataset / "float"
    run = runs.Run(out.resolve())
    if run.has_result():
        return run
    if run.file(runs.CONFIG).exists():
        return resume(run, progress=False)
    config = TrainConfig(method="float", dataset=dataset, epochs=epochs)
    return train(config, out=out, progress=False)


def run_cell(source: runs.Run, out: Path, cell: tuple[str, str, str, int, str],
             train: dict[str, Any]) -> runs.Run:  # fmt: skip
    from tools import steps

    _label, tool, quantizer, bits, order = cell
    if tool == "inq":
        from tools.inq import inq

        return inq(source, out, bits, on_step=steps.print_step, **train)
    from tools.progressive import progressive

    return progressive(source, out, quantizer, bits, order=order, on_step=steps.print_step, **train)


def nonzero_fraction(run: runs.Run) -> float:
    """The fraction of conv/dense kernel weights that are not zero in the run's model."""
    from tools.retrain import QUANTIZABLE

    kernels = [layer.kernel.numpy() for layer in run.load_model().layers
               if isinstance(layer, QUANTIZABLE)]  # fmt: skip
    return sum(int((k != 0).sum()) for k in kernels) / sum(k.size for k in kernels)


def table(root: Path, datasets: list[str]) -> str:
    lines = [
        "| dataset | model | test accuracy | Δ vs float (pt) | accuracy after 1st quantization "
        "| non-zero weights | retraining epochs | wall time (s, shared CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        src = runs.Run((root / dataset / "float").resolve())
        if not src.has_result():
            lines.append(f"| {dataset} | float | not run | | | | | |")
            continue
        r = src.result()
        lines.append(f"| {dataset} | float (32-bit) | {r['test_accuracy']:.4f} | 0 | | "
                     f"{nonzero_fraction(src):.2%} | {r['epochs']} (training) | "
                     f"{r['train_time_s']:.0f} |")  # fmt: skip
        for cell in CELLS:
            label, tool, _q, bits, order = cell
            run = runs.Run(cell_dir(root, dataset, tool, bits, order).resolve())
            if not run.has_result():
                lines.append(f"| {dataset} | {label} | not run | | | | | |")
                continue
            r = run.result()
            first = float(run.metrics()[0]["quantized_accuracy"])
            lines.append(
                f"| {dataset} | {label} | {r['test_accuracy']:.4f} | {r['delta_pt']:+.2f} | "
                f"{first:.4f} | {nonzero_fraction(run):.2%} | {r['epochs']} | "
                f"{r['train_time_s']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m benchmarks.tools", __doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist,fashion_mnist")
    p.add_argument("--root", type=Path, default=Path("runs/bench"))
    p.add_argument("--float-epochs", type=int, default=3, help="epochs for a missing float run")
    p.add_argument("--epochs-per-step", type=int, default=1)
    p.add_argument("--train-samples", type=int, help="retraining subset per tool run")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--only", help="comma-separated cell labels to run (default: all)")
    p.add_argument("--table-only", action="store_true", help="no training: tabulate what ran")
    p.add_argument("--table", type=Path, help="also write the table (markdown) here")
    args = p.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    train = {"epochs_per_step": args.epochs_per_step, "learning_rate": args.lr,
             "train_samples": args.train_samples, "progress": False}  # fmt: skip
    only = set(args.only.split(",")) if args.only else None
    if not args.table_only:
        for dataset in datasets:
            source = float_run(args.root, dataset, args.float_epochs)
            for cell in sorted(CELLS, key=priority):  # the headline cells first
                if only and cell[0] not in only:
                    continue
                print(f"== {dataset}: {cell[0]}", flush=True)
                run_cell(
                    source, cell_dir(args.root, dataset, cell[1], cell[3], cell[4]), cell, train
                )
    text = table(args.root, datasets)
    print(text)
    if args.table:
        subset = f"{args.train_samples} random" if args.train_samples else "all"
        notes = (
            "LeNet-5 (32C5-MP2-64C5-MP2-512-10, batch norm), float run trained by "
            "`pipeline.train --method float`; every tool retrains "
            f"{args.epochs_per_step} epoch(s) per step on {subset} training images (Adam, lr "
            f"{args.lr}, cosine within each step; an epoch is one pass over them) and is tested on "
            "the full test set. Levels: "
            "INQ's powers of two (`po2`) in every row, so rows differ only in how quantization "
            "proceeds. INQ schedule 50/75/87.5/100 %, batch-norm statistics re-estimated on "
            "training images after every projection and retraining; progressive = input side "
            "first; all-at-once = seed 004's simple quantization (STE) for the same epochs. "
            "Non-zero weights: of all conv/dense kernel weights. Wall times: 2-core CPU "
            "shared with other jobs (contended), only roughly comparable."
        )
        write_table(args.table, "Tools stage: INQ vs progressive vs all-at-once", f"{notes}\n\n{text}")
    return 0


if __name__ == "__main__":
    cli.run(main)

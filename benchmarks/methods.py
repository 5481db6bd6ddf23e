"""Benchmark: every registered method (``--list-methods``) trained on MNIST and
Fashion-MNIST with one documented schedule; a table against the float baseline and the
papers' figures.

Each (dataset, method) cell is an ordinary run directory under ``--root``; finished cells
are reused and an interrupted one resumes from its last epoch, so the grid can be stopped
and restarted. The table (markdown) goes to stdout and to ``--results``.

    python -m benchmarks.methods [--datasets mnist fashion_mnist] [--methods bnn twn ...]
                            [--model lenet5] [--epochs 3] [--batch-size 64]

Schedule: every method trains ``--model`` for ``--epochs`` epochs on the full training set
with batch ``--batch-size``, seed 0, and its own default optimizer, learning rate and
schedule (recorded in each run's ``config.json``). The papers train far longer (hundreds of
epochs) and often other architectures; the "paper" column names both, so the gap is read
against that.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout first

import pipeline  # noqa: E402,F401
from benchmarks.table import write_table  # noqa: E402

# MNIST figures the papers report: (test accuracy %, the setting it was measured in).
PAPER_MNIST: dict[str, tuple[float, str]] = {
    "binaryconnect": (98.71, "PI-MLP 3x1024, 1000 epochs"),
    "binaryconnect-stochastic": (98.82, "PI-MLP 3x1024, 1000 epochs"),
    "bnn": (99.04, "PI-MLP 3x4096, 1000 epochs"),
    "twn": (99.35, "LeNet-5 32C5-64C5-512"),
}
RESULTS = Path(__file__).parent / "results"


def run_cell(root: Path, model: str, method: str, dataset: str, epochs: int, batch: int,
             train_missing: bool = True):  # fmt: skip
    from pipeline import runs
    from pipeline.train.trainer import TrainConfig, resume, train

    out = root / dataset / method
    run = runs.Run(out.resolve())
    if run.has_result():
        return run
    if not train_missing:
        return None
    if run.file(runs.CONFIG).exists():
        return resume(run, progress=False)
    config = TrainConfig(model=model, method=method, dataset=dataset, epochs=epochs,
                         batch_size=batch, seed=0)  # fmt: skip
    return train(config, out=out, progress=False)


def row(run: Any, baseline: float | None, dataset: str) -> dict[str, Any]:
    config, result = run.config(), run.result()
    name = config["method"]["name"]
    bits = config["method"]["bits"]
    acc = 100 * result["test_accuracy"]
    paper = PAPER_MNIST.get(name) if dataset == "mnist" else None
    return {
        "method": name,
        "bits": f"{bits['w']}/{bits['a']}/{bits['g']}",
        "accuracy": acc,
        "baseline": baseline,
        "delta": None if baseline is None else acc - baseline,
        "paper": paper,
        "gap": None if paper is None else acc - paper[0],
        "time": result["train_time_s"],
        "optimizer": f"{config['method']['optimizer_name']} {config['method']['lr_schedule']}",
    }


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | W/A/G bits | test acc. % | float % | delta pt | paper % (setting) "
        "| gap to paper pt | optimizer, schedule | training time s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        paper = "–" if r["paper"] is None else f"{r['paper'][0]:.2f} ({r['paper'][1]})"
        lines.append(
            f"| {r['method']} | {r['bits']} | {r['accuracy']:.2f} | {fmt(r['baseline'], '.2f')} "
            f"| {fmt(r['delta'], '+.2f')} | {paper} | {fmt(r['gap'], '+.2f')} "
            f"| {r['optimizer']} | {r['time']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from pipeline.methods import method_names

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    p.add_argument("--methods", nargs="+", help="default: every registered method")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--root", type=Path, default=Path("runs/bench-methods"))
    p.add_argument("--results", type=Path, default=RESULTS / "methods.md")
    p.add_argument("--no-train", action="store_true",
                   help="tabulate only the cells already finished under --root")  # fmt: skip
    args = p.parse_args()
    methods = args.methods or method_names()
    if "float" in methods:  # the baseline first: every other row is compared with it
        methods = ["float"] + [m for m in methods if m != "float"]
    sections = []
    missing: list[str] = []
    for dataset in args.datasets:
        rows: list[dict[str, Any]] = []
        baseline = None
        for method in methods:
            started = time.strftime("%H:%M:%S")
            print(f"[{started}] {dataset} {method} ...", file=sys.stderr, flush=True)
            run = run_cell(args.root / args.model, args.model, method, dataset,
                           args.epochs, args.batch_size, not args.no_train)  # fmt: skip
            if run is None:
                missing.append(f"{dataset}/{method}")
                continue
            r = row(run, baseline, dataset)
            if method == "float":
                baseline, r["baseline"], r["delta"] = r["accuracy"], None, None
            rows.append(r)
            print(f"  {r['accuracy']:.2f} % in {r['time']:.0f} s", file=sys.stderr, flush=True)
        sections.append(f"## {dataset} ({args.model})\n\n{table(rows)}\n")
    text = (
        f"Schedule: {args.model}, {args.epochs} epochs on the full training set, batch "
        f"{args.batch_size}, seed 0, each method's default optimizer and learning-rate "
        "schedule (column 'optimizer, schedule'; the exponential schedule decays the rate "
        "x0.01 over the run). Test accuracy on the full test set. The papers' figures come "
        "from far longer training (and, for BinaryConnect and BinaryNet, a permutation-"
        "invariant MLP instead of LeNet-5): the gap column says how far this short schedule "
        "is from them, not whether the implementation is faithful.\n\n"
        "Training times are wall-clock on this CPU (its load is above).\n\n" + "\n".join(sections)
    )
    if missing:
        text += "\nNot run (no finished cell): " + ", ".join(missing) + ".\n"
    print(write_table(args.results, "Every method on MNIST / Fashion-MNIST", text))


if __name__ == "__main__":
    main()

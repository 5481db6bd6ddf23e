"""The comparison plots of a grid: accuracy against weight bits, and against model size.

Both read the rows of ``results.csv`` (see :mod:`pipeline.compare.grid`) and write PNGs with
matplotlib's non-interactive backend, so they work on headless machines.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline import runs

Row = dict[str, Any]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(str(row["dataset"]), str(row["model"]))].append(row)
    return groups


def _colors(rows: list[Row]) -> dict[str, str]:
    """One colour per method, the same in every plot; the float baseline is grey."""
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    methods = sorted({str(r["method"]) for r in rows} - {"float"})
    return {"float": "0.3", **{m: cycle[i % len(cycle)] for i, m in enumerate(methods)}}


def _save(fig: Any, path: Path) -> Path:
    with runs.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def accuracy_vs_bits(rows: list[Row], path: Path) -> Path:
    """One panel per (dataset, model): test accuracy of each method over its bit widths,
    with the float baseline as a dashed line."""
    plt = _pyplot()
    groups = _groups(rows)
    colors = _colors(rows)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, ((dataset, model), group) in zip(axes[0], sorted(groups.items()), strict=True):
        by_method: dict[str, list[Row]] = defaultdict(list)
        for row in group:
            by_method[str(row["method"])].append(row)
        quantized = sorted(m for m in by_method if m != "float")
        for method, points in sorted(by_method.items()):
            points.sort(key=lambda r: int(r["bits"]))
            bits = [int(r["bits"]) for r in points]
            acc = [100 * float(r["accuracy"]) for r in points]
            if method == "float":  # the baseline: a point at 32 bits and a guide line
                ax.axhline(acc[0], color="0.5", linestyle="--", linewidth=1)
                ax.plot(bits, acc, marker="s", color=colors[method], linestyle="none",
                        label=f"float ({acc[0]:.2f} %)")  # fmt: skip
            else:  # methods sharing a bit width are nudged apart so none hides another
                k = quantized.index(method) - (len(quantized) - 1) / 2
                nudged = [b * 2 ** (0.05 * k) for b in bits]
                ax.plot(nudged, acc, marker="o", color=colors[method], label=method)
        ticks = sorted({int(r["bits"]) for r in group})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(b) for b in ticks])
        ax.minorticks_off()
        ax.set_xlim(min(ticks) / 1.5, max(ticks) * 1.5)
        ax.set_xlabel("weight bits")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model} on {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Accuracy vs weight bits")
    return _save(fig, path)


def accuracy_vs_size(rows: list[Row], path: Path) -> Path | None:
    """Accuracy against .tflite size, every exported cell; None if nothing was exported."""
    sized = [r for r in rows if str(r.get("tflite_bytes", "")) not in ("", "None")]
    if not sized:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = "os^DvP*X"
    models = sorted({(str(r["dataset"]), str(r["model"])) for r in sized})
    colors = _colors(rows)
    for row in sized:
        m = models.index((str(row["dataset"]), str(row["model"])))
        x, y = int(row["tflite_bytes"]) / 1024, 100 * float(row["accuracy"])
        ax.scatter(x, y, marker=markers[m % len(markers)], color=colors[str(row["method"])], s=50)
        ax.annotate(f"{row['bits']}b", (x, y), textcoords="offset points", xytext=(5, 3),
                    fontsize="x-small")  # fmt: skip
    for method in sorted({str(r["method"]) for r in sized}):  # colour = method, marker = model
        ax.scatter([], [], color=colors[method], marker="o", label=method)
    for m, (dataset, model) in enumerate(models):
        marker = markers[m % len(markers)]
        ax.scatter([], [], color="0.4", marker=marker, label=f"{model} · {dataset}")
    sizes = [int(r["tflite_bytes"]) for r in sized]
    if max(sizes) > 8 * min(sizes):  # a log axis only when sizes span orders of magnitude
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(".tflite size (KiB)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs model size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)

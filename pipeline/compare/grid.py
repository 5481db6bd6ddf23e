"""Comparison grids: model × method × bits × dataset, each cell an ordinary run.

A grid file (TOML) names the axes and how to train::

    name = "MNIST"
    out = "runs/compare-mnist"      # cell runs go to OUT/cells/<cell>/
    models = ["lenet5", "mlp1024"]
    datasets = ["mnist"]
    export = true                   # .tflite + size + parity (pipeline.export)
    bench = "host"                  # optional: a bench target for latency

    [methods]                       # method -> weight bit widths
    float = [32]
    bnn = [1]
    dorefa = { bits = [2, 4], options = { abits = 32 } }
    inq = { bits = [3, 5], args = ["--epochs-per-step", "1"] }

    [options]                       # method options for every trained cell (e.g. SGD)
    optimizer_name = "sgd"

    [train]                         # pipeline.train.TrainConfig fields, every cell
    epochs = 3

    [quantize]                      # optional: overrides for quantized cells
    init = "float"                  # start from the float cell ("simple quantization")
    epochs = 2

    [resources]                     # optional: what one cell takes
    cpus_per_cell = 4               # its TensorFlow threads, on every executor; Ray: CPUs
    gpus_per_cell = 1               # Ray: GPUs; fractions share one (0.5: two cells)

Every (model, dataset) gets a float cell, whether or not ``[methods]`` lists ``float``: it
is the baseline of the accuracy deltas and the starting point of tool methods. A method
from the registry (:mod:`pipeline.methods`) is trained by :func:`pipeline.train.train`;
its bit width goes to its ``wbits`` option, or must equal the width it has (``bnn`` is
1-bit). ``inq`` and ``progressive`` are tools (:mod:`tools.inq`, :mod:`tools.progressive`)
that quantize the float cell's run. The whole grid is checked before anything trains; an
error names the cell it comes from.

Running is resumable: a cell whose ``result.json`` exists is not trained again, a cell
with a checkpoint continues from it, and export and bench results are kept in the run.
:func:`run_cell` runs one cell; :mod:`pipeline.compare.schedule` runs the grid's cells
on an executor (in this process, ``--jobs N`` processes, or Ray tasks).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import io
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import models
from pipeline import data, runs
from pipeline.errors import BitliteError, UsageError

FLOAT = "float"
FLOAT_BITS = 32
TOOLS = {"inq": "tools.inq", "progressive": "tools.progressive"}  # method -> module
TOOL_BITS = range(2, 9)  # INQ spends one bit on zero, so 1 bit leaves no levels
BENCH_FILE = "bench.json"
RESULTS_CSV = "results.csv"
KEYS = {
    "name",
    "out",
    "models",
    "datasets",
    "methods",
    "options",
    "train",
    "quantize",
    "export",
    "bench",
    "resources",
}
RESOURCES = {"cpus_per_cell", "gpus_per_cell"}


class GridError(UsageError):
    """A grid file that cannot run; the message names the file and the cell."""


@dataclass(frozen=True)
class Cell:
    model: str
    method: str
    bits: int
    dataset: str

    @property
    def name(self) -> str:
        dataset = self.dataset.replace("folder:", "folder-").replace("/", "_")
        return f"{dataset}-{self.model}-{self.method}-w{self.bits}"

    @property
    def is_float(self) -> bool:
        return self.method == FLOAT

    @property
    def tool(self) -> str | None:
        return TOOLS.get(self.method)

    def __str__(self) -> str:
        return (f"cell (model={self.model}, method={self.method}, bits={self.bits}, "
                f"dataset={self.dataset})")  # fmt: skip


@dataclass(frozen=True)
class MethodSpec:
    bits: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # extra command-line arguments for a tool method


@dataclass(frozen=True)
class Resources:
    """What one cell occupies on a worker: CPU cores (its TensorFlow threads; None: not
    set, see :func:`pipeline.compare.executors.threads_per_cell`) and GPUs."""

    cpus: float | None = None
    gpus: float = 0.0


@dataclass
class Grid:
    path: Path
    name: str
    out: Path
    models: list[str]
    datasets: list[str]
    methods: dict[str, MethodSpec]
    train: dict[str, Any]
    quantize: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)  # every trained cell's method
    export: bool = True
    bench: str | None = None
    resources: Resources = field(default_factory=Resources)

    def cells(self) -> list[Cell]:
        """Float baselines first for each (dataset, model), then the listed methods."""
        cells = []
        for dataset in self.datasets:
            for model in self.models:
                listed = self.methods.get(FLOAT)  # validation rejects widths other than 32
                for bits in sorted(set(listed.bits if listed else ()) | {FLOAT_BITS}):
                    cells.append(Cell(model, FLOAT, bits, dataset))
                for method, spec in self.methods.items():
                    if method != FLOAT:
                        cells += [Cell(model, method, b, dataset) for b in spec.bits]
        return cells

    def run_dir(self, cell: Cell) -> runs.Run:
        return runs.Run((self.out / "cells" / cell.name).resolve())

    def baseline(self, cell: Cell) -> Cell:
        return Cell(cell.model, FLOAT, FLOAT_BITS, cell.dataset)

    def source(self, cell: Cell) -> Cell | None:
        """The cell whose finished run ``cell`` starts from: its float cell for a tool, or
        for a trained cell when ``[quantize] init = "float"``; None when it starts fresh."""
        if cell.is_float:
            return None
        if cell.tool or self.quantize.get("init") == FLOAT:
            return self.baseline(cell)
        return None

    def is_complete(self, cell: Cell) -> bool:
        """Trained, and exported and benchmarked if the grid asks: nothing left to run."""
        run = self.run_dir(cell)
        return (run.has_result()
                and (not self.export or run.file(runs.EXPORT_REPORT).exists())
                and (not self.bench or run.file(BENCH_FILE).exists()))  # fmt: skip

    def train_config(self, cell: Cell):
        """The :class:`TrainConfig` of a trained (non-tool) cell."""
        from pipeline.train.trainer import TrainConfig

        settings = dict(self.train)
        if not cell.is_float:
            settings.update({k: v for k, v in self.quantize.items() if k != "init"})
            if self.quantize.get("init") == FLOAT:
                settings["init_from"] = str(self.run_dir(self.baseline(cell)).path)
        options = method_options(cell, self.methods.get(cell.method), self.options)
        return TrainConfig(model=cell.model, method=cell.method, dataset=cell.dataset,
                           method_options=options, **settings)  # fmt: skip


# -- parsing and validation --------------------------------------------------------------


def load_grid(path: Path, out: Path | None = None) -> Grid:
    """Read and fully validate a grid file; raises :class:`GridError` naming the problem."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GridError(f"grid file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise GridError(f"{path} is not valid TOML ({err})") from None
    grid = parse_grid(raw, Path(path))
    if out is not None:
        grid.out = out
    validate(grid)
    return grid


def parse_grid(raw: dict[str, Any], path: Path) -> Grid:
    def fail(message: str) -> GridError:
        return GridError(f"{path}: {message}")

    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; a grid has {', '.join(sorted(KEYS))}")
    for key in ("models", "datasets", "methods"):
        if not raw.get(key):
            raise fail(f"'{key}' is missing or empty")
    for key in ("models", "datasets"):
        if not isinstance(raw[key], list) or not all(isinstance(v, str) for v in raw[key]):
            raise fail(f"'{key}' must be a list of names")
    if not isinstance(raw["methods"], dict):
        raise fail("[methods] must be a table: method = [bits, ...]")
    _check_types(raw, fail)
    methods = {name: _method_spec(name, value, fail) for name, value in raw["methods"].items()}
    return Grid(
        path=path,
        name=raw.get("name", path.stem),
        out=Path(raw.get("out", f"runs/compare-{path.stem}")),
        models=list(raw["models"]),
        datasets=list(raw["datasets"]),
        methods=methods,
        train=dict(raw.get("train", {})),
        quantize=dict(raw.get("quantize", {})),
        options=dict(raw.get("options", {})),
        export=raw.get("export", True),
        bench=raw.get("bench"),
        resources=_resources(raw.get("resources", {}), fail),
    )


def _resources(value: Any, fail: Callable[[str], GridError]) -> Resources:
    if not isinstance(value, dict):
        raise fail("[resources] must be a table: cpus_per_cell = 4, gpus_per_cell = 1")
    extra = sorted(set(value) - RESOURCES)
    if extra:
        raise fail(f"[resources] has unknown key(s) {', '.join(extra)} "
                   f"({', '.join(sorted(RESOURCES))})")  # fmt: skip
    for key, least in (("cpus_per_cell", "> 0"), ("gpus_per_cell", ">= 0")):
        v = value.get(key, 1)
        if (isinstance(v, bool) or not isinstance(v, int | float)
                or not (v > 0 if least == "> 0" else v >= 0)):  # fmt: skip
            raise fail(f"[resources] {key} must be a number {least}, not {v!r}")
    cpus = value.get("cpus_per_cell")
    return Resources(cpus=None if cpus is None else float(cpus),
                     gpus=float(value.get("gpus_per_cell", 0)))  # fmt: skip


# The top-level keys whose TOML type is fixed (the rest are checked above or per cell).
TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"), "out": (str, "a string (a directory)"),
    "export": (bool, "true or false"), "bench": (str, "a target name such as \"host\""),
    "train": (dict, "a table"), "quantize": (dict, "a table"), "options": (dict, "a table"),
}  # fmt: skip


def _check_types(raw: dict[str, Any], fail: Callable[[str], GridError]) -> None:
    """``export = "no"`` used to read as true and ``bench = 5`` to pass: say so instead."""
    for key, (kind, words) in TYPES.items():
        if key in raw and not isinstance(raw[key], kind):
            raise fail(f"'{key}' must be {words}, got {raw[key]!r}")
    if "bench" in raw and importlib.util.find_spec("pipeline.bench.targets") is not None:
        from pipeline.bench.targets import check_spec  # (validate names a missing module)

        try:
            check_spec(raw["bench"])
        except UsageError as err:
            raise fail(f"bench: {err}") from None


def _method_spec(name: str, value: Any, fail: Callable[[str], GridError]) -> MethodSpec:
    if isinstance(value, list):
        value = {"bits": value}
    if not isinstance(value, dict) or "bits" not in value:
        raise fail(f"methods.{name} must be a list of bit widths or a table with 'bits'")
    extra = sorted(set(value) - {"bits", "options", "args"})
    if extra:
        raise fail(f"methods.{name} has unknown key(s) {', '.join(extra)} (bits, options, args)")
    bits = value["bits"]
    if not isinstance(bits, list) or not bits:
        raise fail(f"methods.{name}.bits must be a non-empty list")
    for b in bits:
        if not isinstance(b, int) or isinstance(b, bool):
            raise fail(f"methods.{name}: bit width {b!r} is not an integer")
    options, args = value.get("options", {}), value.get("args", [])
    if not isinstance(options, dict):
        raise fail(f"methods.{name}.options must be a table, got {options!r}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise fail(f"methods.{name}.args must be a list of strings, got {args!r}")
    return MethodSpec(tuple(bits), dict(options), tuple(args))


def validate(grid: Grid) -> None:
    """Check every cell before anything runs: names, bit widths, settings, modules."""
    from pipeline.train.trainer import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    reserved = {"model", "method", "dataset", "method_options", "init_from"}
    for section in ("train", "quantize"):
        bad = sorted(set(getattr(grid, section)) - (fields - reserved) - {"init"})
        if bad:
            raise GridError(f"{grid.path}: [{section}] has unknown setting(s) {', '.join(bad)}; "
                            f"valid: {', '.join(sorted(fields - reserved))}")  # fmt: skip
    if "init" in grid.train:
        raise GridError(f"{grid.path}: 'init' belongs in [quantize], not [train]")
    if grid.quantize.get("init", "scratch") not in ("scratch", FLOAT):
        raise GridError(f"{grid.path}: [quantize] init must be 'scratch' or 'float'")
    for module, what in (("pipeline.export", "export = true"),
                         ("pipeline.bench.targets", "bench")):  # fmt: skip
        wanted = grid.export if what.startswith("export") else grid.bench
        if wanted and importlib.util.find_spec(module) is None:
            raise GridError(f"{grid.path}: {what} needs {module}, which this checkout lacks")
    if grid.bench and not grid.export:
        raise GridError(f"{grid.path}: bench needs export = true (it times the .tflite)")
    for cell in grid.cells():
        try:
            validate_cell(grid, cell)
        except BitliteError as err:
            raise GridError(f"{grid.path}: {cell}: {err}") from None


def validate_cell(grid: Grid, cell: Cell) -> None:

    models.check_name(cell.model)
    data.check_name(cell.dataset)
    if cell.tool:
        if cell.bits not in TOOL_BITS:
            raise UsageError(f"{cell.method} quantizes to {TOOL_BITS[0]}–{TOOL_BITS[-1]} bits")
        if importlib.util.find_spec(cell.tool) is None:
            raise UsageError(f"method '{cell.method}' needs {cell.tool}, which this checkout lacks")
        return
    if cell.is_float and cell.bits != FLOAT_BITS:
        raise UsageError(f"float is {FLOAT_BITS}-bit; list it as float = [{FLOAT_BITS}]")
    config = grid.train_config(cell)
    if config.init_from is None:
        config.validate()
    else:  # the float run it starts from does not exist yet; check the rest
        dataclasses.replace(config, init_from=None).validate()


def method_options(cell: Cell, spec: MethodSpec | None,
                   common: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The method options for ``cell``: the grid's common options, the method's own
    options over them, and the cell's bit width.

    A method with a ``wbits`` option takes the cell's width there; any other method
    must already have that width (``bnn`` is 1-bit, ``twn`` 2-bit). Raises UsageError.
    """
    from pipeline.methods import METHODS, check_name, make_method

    options = {**(common or {}), **(spec.options if spec else {})}
    if cell.tool:
        return options
    check_name(cell.method)
    if "wbits" in {f.name for f in dataclasses.fields(METHODS[cell.method])}:
        options["wbits"] = cell.bits
    method = make_method(cell.method, **options)  # rejects widths the method cannot take
    if method.bits()["w"] != cell.bits:
        raise UsageError(f"method '{cell.method}' has {method.bits()['w']}-bit weights, "
                         f"not {cell.bits}")  # fmt: skip
    return options


# -- running -----------------------------------------------------------------------------


def finished_rows(grid: Grid) -> list[dict[str, Any]]:
    """The result rows of the cells finished so far (and whose float baseline is)."""
    done = [c for c in grid.cells() if grid.run_dir(c).has_result()]
    done = [c for c in done if grid.run_dir(grid.baseline(c)).has_result()]
    return [result_row(grid, c, grid.run_dir(c)) for c in done]


def run_cell(grid: Grid, cell: Cell, run: runs.Run, progress: bool,
             log: Callable[[str], None], tool_here: bool = False) -> None:  # fmt: skip
    """Train (or quantize with its tool), export and bench one cell; ``tool_here``: see
    :func:`run_tool`."""
    if run.has_result():
        log("  trained: kept")
    elif cell.tool:
        run_tool(grid, cell, run, progress, here=tool_here)
    else:
        from pipeline.train.trainer import resume, train

        if run.file(runs.CONFIG).exists():
            log("  resuming from its last checkpoint")
            resume(run, progress=progress)
        else:
            train(grid.train_config(cell), out=run.path, progress=progress)
    if grid.export and not run.file(runs.EXPORT_REPORT).exists():
        export(run, log)
    if grid.bench and not run.file(BENCH_FILE).exists():
        runs.write_json(run.file(BENCH_FILE), bench(run, grid.bench))


def run_tool(grid: Grid, cell: Cell, run: runs.Run, progress: bool,
             here: bool = False) -> None:  # fmt: skip
    """``python -m tools.<method> --run FLOAT --bits B --out RUN [--resume] ARGS``.

    In a subprocess, or with ``here`` (a grid's worker process, which runs one cell at a
    time and nothing else) by calling the tool's ``main`` in this process: the worker has
    TensorFlow loaded and its functions converted already, which a fresh process spends
    longer on than a short cell's training (about 8 s CPU here, per tool cell)."""
    source = grid.run_dir(grid.baseline(cell))
    spec = grid.methods[cell.method]
    argv = ["--run", str(source.path), "--bits", str(cell.bits), "--out", str(run.path),
            *spec.args]  # fmt: skip
    if run.file(runs.CONFIG).exists():
        argv.append("--resume")
    if not progress:
        argv.append("--quiet")
    if here:
        _run_tool_here(cell, argv, progress)
        return
    # Quiet (and in every parallel worker): the tool's step lines would interleave.
    stdout = None if progress else subprocess.DEVNULL
    proc = subprocess.run([sys.executable, "-m", str(cell.tool), *argv], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)  # fmt: skip
    if proc.returncode != 0:
        _tool_failed(cell, proc.stderr)


def _run_tool_here(cell: Cell, argv: list[str], progress: bool) -> None:
    """The tool's command line, run by its ``main`` in this process; failures as in a
    subprocess (its last line of error output), its result line dropped unless ``progress``."""
    import logging

    import tensorflow as tf

    main = importlib.import_module(str(cell.tool)).main
    # As in a fresh process: no global seed. The cells before set one, and a tool's first
    # shuffle depends on it (its own seed comes after), so its results would depend on them.
    tf.random.set_seed(None)
    stderr = io.StringIO()
    stdout = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    tf_log = logging.getLogger("tensorflow")  # its handler writes to the real stderr
    level = tf_log.level
    tf_log.setLevel(logging.WARNING if progress else logging.ERROR)
    try:
        with stdout, contextlib.redirect_stderr(stderr):
            main(argv)
    except SystemExit as exit:  # argparse refused the grid's tool arguments
        if exit.code:
            _tool_failed(cell, stderr.getvalue())
    except BitliteError as err:
        _tool_failed(cell, str(err))
    finally:
        tf_log.setLevel(level)


def _tool_failed(cell: Cell, stderr: str) -> None:
    lines = stderr.strip().splitlines() or ["(no message)"]
    raise BitliteError(f"{cell}: {cell.tool} failed: {lines[-1]}")


def _die_with_parent() -> None:
    """In the tool's process, before it runs: on Linux, be killed with the worker that
    started it. Otherwise a cancelled or killed worker (Ctrl-C, OOM, Ray) leaves the tool
    training on, and the retry would be a second writer in the same cell directory."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def export(run: runs.Run, log: Callable[[str], None]) -> None:
    from pipeline.errors import ParityError
    from pipeline.export.exporter import export_run

    try:
        export_run(run)
    except ParityError as err:  # the report is written; the table shows parity_ok = False
        log(f"  warning: {err}")


def bench(run: runs.Run, target: str) -> dict[str, Any]:
    """Time the cell's .tflite on a bench target (:mod:`pipeline.bench.targets`)."""
    from pipeline.bench.targets import make_target
    from pipeline.bench.targets.base import Settings
    from pipeline.bench.targets.measure import measure

    m = measure(run.file(runs.TFLITE), make_target(target, progress=lambda _: None), Settings())
    return {"target": target, **m.latency(), "latency_is_device": m.latency_is_device,
            "instructions_per_invoke": m.instructions_per_invoke, "cpu": m.cpu}  # fmt: skip


# -- results -----------------------------------------------------------------------------

COLUMNS = ["dataset", "model", "method", "bits", "accuracy", "float_accuracy", "delta_pt",
           "tflite_accuracy", "tflite_bytes", "parity_ok", "latency_ms", "bench_target",
           "params", "train_time_s", "run"]  # fmt: skip


def result_row(grid: Grid, cell: Cell, run: runs.Run) -> dict[str, Any]:
    result = run.result()
    accuracy = float(result["test_accuracy"])
    base = grid.run_dir(grid.baseline(cell)).result()["test_accuracy"]
    row: dict[str, Any] = {
        "dataset": cell.dataset, "model": cell.model, "method": cell.method, "bits": cell.bits,
        "accuracy": accuracy, "float_accuracy": float(base),
        "delta_pt": round(100 * (accuracy - float(base)), 2),
        "params": result.get("params", ""), "train_time_s": result.get("train_time_s", ""),
        "run": os.path.relpath(run.path, grid.out.resolve()),
    }  # fmt: skip
    if run.file(runs.EXPORT_REPORT).exists():
        report = runs.read_json(run.file(runs.EXPORT_REPORT))
        row.update(tflite_accuracy=report["tflite_accuracy"], tflite_bytes=report["size_bytes"],
                   parity_ok=report["parity_ok"])  # fmt: skip
    if run.file(BENCH_FILE).exists():
        measured = runs.read_json(run.file(BENCH_FILE))
        row.update(latency_ms=measured.get("median_ms"), bench_target=measured["target"])
    return {c: row.get(c, "") for c in COLUMNS}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_bytes(path, buf.getvalue().encode())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f} %" if value not in ("", None) else "—"


def _size(value: Any) -> str:
    if value in ("", None):
        return "—"
    kib = int(value) / 1024
    return f"{kib / 1024:.2f} MiB" if kib >= 1024 else f"{kib:.1f} KiB"


def results_markdown(grid: Grid, rows: list[dict[str, Any]], command: str,
                     failed: dict[str, str] | None = None) -> str:  # fmt: skip
    """One table per (dataset, model), laid out like seed 004 tables 7–10: each method's
    weight bits and accuracy, the change from the float cell, size and latency; then the
    cells that failed (``failed``: cell name -> error), so a partial grid says what is
    missing and why."""
    lines = [f"# {grid.name}", "", f"Produced by `{command}` from `{grid.path}`.", ""]
    latency = any(r["latency_ms"] not in ("", None) for r in rows)
    for key in dict.fromkeys((r["dataset"], r["model"]) for r in rows):
        group = [r for r in rows if (r["dataset"], r["model"]) == key]
        lines += [f"## {key[1]} on {key[0]}", ""]
        head = ["Method", "Weight bits", "Accuracy", "Δ vs float (pt)", ".tflite",
                ".tflite accuracy"] + (["Latency (ms)"] if latency else [])  # fmt: skip
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in group:
            delta = "—" if r["method"] == FLOAT else f"{float(r['delta_pt']):+.2f}"
            parity = "" if r["parity_ok"] in ("", True, "True") else " (parity failed)"
            cells = [r["method"], f"{r['bits']}-bit", _pct(r["accuracy"]), delta,
                     _size(r["tflite_bytes"]), _pct(r["tflite_accuracy"]) + parity]  # fmt: skip
            if latency:
                ms = r["latency_ms"]
                cells.append("—" if ms in ("", None) else f"{float(ms):.2f} ({r['bench_target']})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if failed:
        lines += ["## Failed cells", "", "Rerun the same command to retry them.", "",
                  "| Cell | Error |", "|---|---|"]  # fmt: skip
        for name, error in failed.items():
            one_line = " ".join(error.split()).replace("|", "\\|")
            lines.append(f"| {name} | {one_line} |")
        lines.append("")
    return "\n".join(lines)

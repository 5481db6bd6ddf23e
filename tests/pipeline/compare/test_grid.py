"""Grid files: parsing, per-cell validation and its one-line errors, results tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.compare.grid import Cell, GridError, load_grid, parse_grid, results_markdown

GRIDS = Path(__file__).resolve().parents[3] / "grids"

BASE = """
name = "t"
models = ["lenet5"]
datasets = ["mnist"]
export = false
[methods]
bnn = [1]
[train]
epochs = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(GridError) as info:
        load_grid(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def test_cells_are_the_cross_product_with_a_float_baseline_each(tmp_path):
    text = BASE.replace('["lenet5"]', '["lenet5", "mlp1024"]').replace(
        '["mnist"]', '["mnist", "fashion_mnist"]'
    )
    grid = load_grid(write(tmp_path, text), out=tmp_path / "out")
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 2  # (float + bnn) × models × datasets
    assert cells[0] == Cell("lenet5", "float", 32, "mnist")
    assert cells[1] == Cell("lenet5", "bnn", 1, "mnist")
    assert cells[-1] == Cell("mlp1024", "bnn", 1, "fashion_mnist")
    assert len({c.name for c in cells}) == len(cells)  # one run directory per cell
    assert grid.run_dir(cells[1]).path == (tmp_path / "out/cells/mnist-lenet5-bnn-w1").resolve()


def test_train_settings_options_and_quantize_phase_reach_the_cell_config(tmp_path):
    text = BASE + '[options]\noptimizer_name = "sgd"\n[quantize]\ninit = "float"\nepochs = 3\n'
    grid = load_grid(write(tmp_path, text), out=tmp_path / "out")
    float_cfg = grid.train_config(Cell("lenet5", "float", 32, "mnist"))
    bnn_cfg = grid.train_config(Cell("lenet5", "bnn", 1, "mnist"))
    assert float_cfg.epochs == 1 and float_cfg.init_from is None
    assert bnn_cfg.epochs == 3  # the quantization phase's schedule
    assert bnn_cfg.init_from == str((tmp_path / "out/cells/mnist-lenet5-float-w32").resolve())
    assert bnn_cfg.method_options == {"optimizer_name": "sgd"}


@pytest.mark.parametrize(
    "change,expected",
    [
        (("bnn = [1]", "bnnn = [1]"), "method=bnnn, bits=1, dataset=mnist): unknown method 'bnnn'"),
        (('["lenet5"]', '["lenet6"]'), "cell (model=lenet6, method=float, bits=32, dataset=mnist): unknown model 'lenet6'"),
        (('["mnist"]', '["mnist2"]'), "dataset=mnist2): unknown dataset 'mnist2'"),
        (("bnn = [1]", "bnn = [2]"), "cell (model=lenet5, method=bnn, bits=2, dataset=mnist): method 'bnn' has 1-bit weights, not 2"),
        (("bnn = [1]", "bnn = [1]\nfloat = [8]"), "method=float, bits=8, dataset=mnist): float is 32-bit"),
        (("bnn = [1]", "inq = [1]"), "method=inq, bits=1, dataset=mnist): inq quantizes to 2–8 bits"),
    ],
)  # fmt: skip
def test_bad_cells_give_one_message_naming_the_cell(tmp_path, change, expected):
    message = error_of(tmp_path, BASE.replace(*change))
    assert expected in message
    assert message.startswith(str(tmp_path / "grid.toml"))


@pytest.mark.parametrize(
    "change,expected",
    [
        (("bnn = [1]", 'bnn = ["one"]'), "methods.bnn: bit width 'one' is not an integer"),
        (("epochs = 1", "epoch = 1"), "[train] has unknown setting(s) epoch"),
        (("export = false", "exprt = false"), "unknown key(s) exprt"),
        (('models = ["lenet5"]', "models = []"), "'models' is missing or empty"),
        (("bnn = [1]", "bnn = { bit = [1] }"), "methods.bnn must be a list of bit widths"),
        (("epochs = 1", "epochs = 0"), "--epochs must be at least 1"),
        (("[train]", "[quantize]\ninit = 'warm'\n[train]"), "init must be 'scratch' or 'float'"),
        (("name", "name = = 1\nx"), "is not valid TOML"),
    ],
)  # fmt: skip
def test_malformed_grids_are_rejected_with_the_reason(tmp_path, change, expected):
    assert expected in error_of(tmp_path, BASE.replace(*change))


def test_missing_grid_file():
    with pytest.raises(GridError, match="does not exist"):
        load_grid(Path("no/such/grid.toml"))


@pytest.mark.parametrize("path", sorted(GRIDS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_grids_parse_and_name_only_real_models_and_datasets(path):
    import tomllib

    grid = parse_grid(tomllib.loads(path.read_text()), path)
    assert grid.cells() and grid.train
    try:
        load_grid(path)
    except GridError as err:  # only a method or tool another branch adds may be missing
        assert "unknown method" in str(err) or "which this checkout lacks" in str(err), err


def test_results_markdown_reads_like_the_seed_tables(tmp_path):
    grid = load_grid(write(tmp_path, BASE))
    common = {"dataset": "mnist", "model": "lenet5", "latency_ms": "", "bench_target": ""}
    rows = [
        {**common, "method": "float", "bits": 32, "accuracy": 0.9912, "delta_pt": 0.0,
         "tflite_bytes": 2_332_664, "tflite_accuracy": 0.9912, "parity_ok": True},
        {**common, "method": "bnn", "bits": 1, "accuracy": 0.9768, "delta_pt": -1.44,
         "tflite_bytes": 98_304, "tflite_accuracy": 0.9767, "parity_ok": False},
    ]  # fmt: skip
    md = results_markdown(grid, rows, "python -m pipeline.compare --grid g.toml")
    assert "## lenet5 on mnist" in md
    assert "| float | 32-bit | 99.12 % | — | 2.22 MiB | 99.12 % |" in md
    assert "| bnn | 1-bit | 97.68 % | -1.44 | 96.0 KiB | 97.67 % (parity failed) |" in md
    assert "Latency" not in md  # no bench target, no latency column
    rows[1].update(latency_ms=1.234, bench_target="host")
    assert "| 1.23 (host) |" in results_markdown(grid, rows, "cmd")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("epochs = 1", 'epochs = "3"', "epochs must be an integer, got '3'"),
        ("epochs = 1", "epochs = 1.5", "epochs must be an integer, got 1.5"),
        ("epochs = 1", "epochs = 1\nbatch_size = true", "batch_size must be an integer"),
        ("export = false", 'export = "no"', "'export' must be true or false, got 'no'"),
        ("export = false", "export = true\nbench = 5", "'bench' must be a target name"),
        ("export = false", 'export = true\nbench = "toaster"', "unknown target 'toaster'"),
        ('name = "t"', "name = 3", "'name' must be a string"),
        ("[train]", '[options]\noptimizer_name = "rmsprop"\n[train]', "optimizer_name 'rmsprop'"),
        ("[train]", '[options]\nlr_schedule = "cosin"\n[train]', "unknown lr_schedule 'cosin'"),
        ("bnn = [1]", 'bnn = { bits = [1], options = "x" }', "methods.bnn.options must be a table"),
        ("bnn = [1]", 'inq = { bits = [4], args = ["--lr", 1] }', "args must be a list of strings"),
        ("bnn = [1]", "inq = [40]", "inq quantizes to 2–8 bits"),
    ],
)
def test_wrong_types_are_rejected_when_the_grid_loads(tmp_path, old, new, expected):
    """Before any cell trains (load_grid is what --check runs): these used to raise
    TypeError, read "no" as true, or fail only after the first cell had trained."""
    assert old in BASE
    message = error_of(tmp_path, BASE.replace(old, new))
    assert expected in message and str(tmp_path / "grid.toml") in message


TOOL_GRID = """
name = "tool"
models = ["lenet5"]
datasets = ["mnist"]
export = false
[methods]
inq = {{ bits = [4], args = [{args}] }}
[train]
epochs = 1
batch_size = 50
train_samples = 200
test_samples = 100
"""


def tool_cells(tmp_path: Path, args: str):
    from pipeline import runs

    grid = load_grid(write(tmp_path, TOOL_GRID.format(args=args)), out=tmp_path / "out")
    float_cell, tool_cell = grid.cells()
    return grid, float_cell, tool_cell, runs.Run(tmp_path / "here")


def test_a_tool_run_in_this_process_fails_as_in_its_own(tmp_path):
    """Grid workers run tool cells in their own process: a refused argument is the same
    one-line error, not argparse's SystemExit ending the worker."""
    from pipeline.compare.grid import run_tool
    from pipeline.errors import BitliteError

    grid, _, cell, run = tool_cells(tmp_path, '"--no-such-option"')
    messages = []
    for here in (False, True):
        with pytest.raises(BitliteError) as info:
            run_tool(grid, cell, run, progress=False, here=here)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].endswith("unrecognized arguments: --no-such-option (see --help)")


def test_a_tool_run_in_this_process_gives_the_subprocess_weights(tmp_path):
    """Same float run, same seeds: INQ called here (after this process trained the float
    cell) and INQ in a fresh process end with the same weights and accuracy."""
    import numpy as np

    from pipeline import runs
    from pipeline.compare.grid import run_cell, run_tool

    args = '"--epochs-per-step", "1", "--train-samples", "200"'
    grid, float_cell, cell, _ = tool_cells(tmp_path, args)
    run_cell(grid, float_cell, grid.run_dir(float_cell), progress=False, log=print)
    results = []
    for here in (False, True):
        run = runs.Run(tmp_path / f"inq-here-{here}")
        run_tool(grid, cell, run, progress=False, here=here)
        results.append((run.result()["test_accuracy"], run.load_model().get_weights()))
    (accuracy, weights), (accuracy_here, weights_here) = results
    assert accuracy == accuracy_here
    assert all(np.array_equal(a, b) for a, b in zip(weights, weights_here, strict=True))

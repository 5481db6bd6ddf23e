"""Layer-wise progressive quantization: order, frozen layers, levels, all-at-once, resume."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline import runs
from pipeline.errors import UsageError
from pipeline.quantizers.po2 import po2_magnitudes
from pipeline.quantizers.uniform import uniform_levels
from tools.progressive import main, ordered, progressive

# LeNet-5's quantizable layers, input to output. Keras numbers layer names per process,
# so the real names are read from the float run (below) when other tests ran first.
LENET = ["quant_conv2d", "quant_conv2d_1", "quant_dense", "quant_dense_1"]


@pytest.fixture(scope="module", autouse=True)
def lenet_names(float_run):
    global LENET
    model = float_run.load_model()
    by_name = {layer.name: layer for layer in model.layers}
    names = [n for n in (layer.name for layer in model.layers) if n.startswith("quant_")]
    kinds = [type(by_name[n]).__name__ for n in names]
    assert kinds == ["QuantConv2D", "QuantConv2D", "QuantDense", "QuantDense"]
    LENET = names


def on_grid(w: np.ndarray, quantizer: str, params: dict, bits: int) -> bool:
    if quantizer == "po2":
        mags = po2_magnitudes(params["n1"], params["n2"])
        return bool(np.isin(w, np.concatenate([-mags, mags])).all())
    return bool(np.isin(w, uniform_levels(params["step"], bits)).all())


def test_orders():
    assert ordered(LENET, "input-first") == LENET
    assert ordered(LENET, "output-first") == LENET[::-1]


@pytest.fixture(scope="module")
def progressive_run(float_run, kernels, tmp_path_factory):
    """Progressive 4-bit po2, input first, interrupted after step 2 and resumed."""
    out = tmp_path_factory.mktemp("progressive") / "prog-po2-4"
    snapshots: list[dict] = []

    def record(job, row, model):
        snapshots.append({"step": job.step, "layer": row["layer"], "kernels": kernels(model)})
        if job.step == 2 and len(snapshots) == 2:
            raise KeyboardInterrupt

    kwargs = dict(quantizer="po2", bits=4, epochs_per_step=1, train_samples=500, progress=False,
                  on_step=record)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        progressive(float_run, out, **kwargs)
    return progressive(float_run, out, **kwargs), snapshots


def test_layers_are_quantized_input_first(progressive_run):
    run, snapshots = progressive_run
    assert [s["layer"] for s in snapshots] == LENET
    assert [r["layer"] for r in run.metrics()] == LENET
    assert [int(r["step"]) for r in run.metrics()] == [1, 2, 3, 4]
    assert run.config()["tool"]["layers"] == LENET
    assert run.config()["tool"]["order"] == "input-first"


def test_frozen_layers_never_change_and_the_rest_retrain(progressive_run, float_run, kernels):
    run, snapshots = progressive_run
    levels = runs.read_json(run.file(runs.STATE))["levels"]
    previous = kernels(float_run.load_model())
    for k, snap in enumerate(snapshots):
        done, todo = LENET[: k + 1], LENET[k + 1 :]
        assert on_grid(snap["kernels"][LENET[k]], "po2", levels[LENET[k]], 4)
        for later in snapshots[k:]:  # bit for bit, through every later step's retraining
            w, w_later = snap["kernels"][LENET[k]], later["kernels"][LENET[k]]
            assert np.array_equal(w.view(np.uint32), w_later.view(np.uint32))
        for name in done[:-1]:
            assert np.array_equal(snap["kernels"][name], previous[name])
        for name in todo:  # not yet quantized: retrained, and still float
            assert not np.array_equal(snap["kernels"][name], previous[name]), (k, name)
            assert not on_grid(snap["kernels"][name], "po2", levels.get(name, levels[LENET[k]]), 4)
        previous = snap["kernels"]


def test_result_and_reload(progressive_run, kernels):
    run, snapshots = progressive_run
    result = run.result()
    assert result["steps"] == 4 and result["bits"] == 4
    assert result["test_accuracy"] > 0.5
    saved = kernels(run.load_model())
    for name in LENET:
        assert np.array_equal(saved[name], snapshots[-1]["kernels"][name])
    assert run.config()["method"]["name"] == "progressive"
    assert run.config()["method"]["bits"]["w"] == 4


def test_all_at_once_trains_through_the_projection(float_run, kernels, tmp_path):
    out = tmp_path / "all-at-once"
    run = progressive(float_run, out, "uniform", 2, order="all-at-once", epochs_per_step=1,
                      train_samples=300, progress=False)  # fmt: skip
    levels = runs.read_json(run.file(runs.STATE))["levels"]
    rows = run.metrics()
    assert len(rows) == 1 and rows[0]["layer"] == "all"
    assert run.result()["epochs"] == 3  # the budget progressive retrains: 3 steps x 1 epoch
    source = kernels(float_run.load_model())
    final = kernels(run.load_model())
    for name in LENET:
        assert on_grid(final[name], "uniform", levels[name], 2)
        assert levels[name]["step"] == pytest.approx(np.abs(source[name]).max(), rel=1e-6)
    # Training moved the float weights: not every kernel is the rounded source.
    from pipeline.quantizers.uniform import uniform_project

    rounded = {n: uniform_project(source[n], levels[n]["step"], 2).numpy() for n in LENET}
    assert any(not np.array_equal(final[n], rounded[n]) for n in LENET)


def test_twn_progressive_output_first(float_run, kernels, tmp_path):
    """TWN projection (pipeline.quantizers.ternary), the reverse order, one retraining step."""
    from tools.retrain import quantizable_layers

    model = float_run.load_model()
    names = [layer.name for layer in quantizable_layers(model)]
    run = progressive(float_run, tmp_path / "twn", "twn", 2, order="output-first",
                      epochs_per_step=1, train_samples=200, progress=False)  # fmt: skip
    assert [r["layer"] for r in run.metrics()] == names[::-1]
    for name, w in kernels(run.load_model()).items():
        values = np.unique(w)
        assert len(values) == 3 and values[1] == 0 and values[0] == -values[2], name
    with pytest.raises(UsageError, match="--bits 2"):
        progressive(float_run, tmp_path / "twn4", "twn", 4, progress=False)


def test_refuses_a_binarized_run(tmp_path):
    import tensorflow as tf

    from models import build_model
    from pipeline.errors import UsageError
    from pipeline.methods import make_method
    from tools.retrain import quantizable_layers

    model = build_model("lenet5", make_method("bnn"), (28, 28, 1), 10)
    with pytest.raises(UsageError, match="already quantizes"):
        quantizable_layers(model)
    assert tf.keras.backend.floatx() == "float32"


@pytest.mark.parametrize(
    "args",
    [
        ["--bits", "4", "--quantizer", "nope"],
        ["--bits", "1", "--quantizer", "uniform"],
        ["--bits", "9", "--quantizer", "uniform"],
        ["--bits", "9", "--quantizer", "po2"],
        ["--bits", "4", "--epochs-per-step", "0"],
    ],
)
def test_cli_rejects_bad_arguments_in_one_line(args, rejected_in_one_line):
    rejected_in_one_line(main, args)


def test_out_must_not_be_the_source(float_run):
    with pytest.raises(UsageError, match="differ"):
        progressive(float_run, float_run.path, "po2", 4, progress=False)

"""INQ: levels, magnitude partition, bit-identical fixed weights, resume, export."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline import runs
from pipeline.errors import UsageError
from pipeline.quantizers.po2 import po2_magnitudes
from tools.inq import check_schedule, inq, inq_partition, main
from tools.steps import TOOL_STATE

SCHEDULE = (0.5, 0.75, 1.0)
BITS = 3


def test_partition_fixes_the_largest_magnitudes_first():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 25)).astype(np.float32)
    free = inq_partition(w, np.ones(w.shape, bool), 0.5)
    assert (~free).sum() == 100
    assert np.abs(w[~free]).min() > np.abs(w[free]).max()
    # The next step fixes the largest of the *remaining* weights, by their current values.
    w2 = w + rng.normal(scale=0.1, size=w.shape).astype(np.float32)
    free2 = inq_partition(w2, free, 0.75)
    assert (~free2).sum() == 150 and not (free2 & ~free).any()  # fixed stays fixed
    newly = free & ~free2
    assert np.abs(w2[newly]).min() > np.abs(w2[free2]).max()
    assert not inq_partition(w2, free2, 1.0).any()


def test_partition_is_deterministic_on_ties():
    w = np.ones(10, np.float32)
    free = inq_partition(w, np.ones(10, bool), 0.3)
    np.testing.assert_array_equal(free, [False] * 3 + [True] * 7)


@pytest.mark.parametrize("bad", [(), (0.5,), (0.5, 0.5, 1.0), (0.75, 0.5, 1.0), (0.0, 1.0)])
def test_schedule_must_increase_to_one(bad):
    with pytest.raises(UsageError):
        check_schedule(bad)


@pytest.fixture(scope="module")
def inq_run(float_run, kernels, tmp_path_factory):
    """INQ 3-bit on the float run, interrupted after step 1 and resumed by the same call.

    Returns the run and, per step, the kernels and still-float masks the step left.
    """
    out = tmp_path_factory.mktemp("inq") / "inq3"
    snapshots: list[dict] = []

    def record(job, row, model):
        with np.load(job.run.file(TOOL_STATE)) as npz:
            masks = {k: npz[k] for k in npz.files}
        snapshots.append({"step": job.step, "kernels": kernels(model), "free": masks})
        if job.step == 1 and len(snapshots) == 1:
            raise KeyboardInterrupt  # as Ctrl-C would, right after the step's checkpoint

    kwargs = dict(bits=BITS, schedule=SCHEDULE, epochs_per_step=1, train_samples=500,
                  progress=False, on_step=record)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        inq(float_run, out, **kwargs)
    assert not runs.Run(out).has_result()
    run = inq(float_run, out, **kwargs)  # the same call continues at step 2
    return run, snapshots


def test_resume_continues_where_it_stopped(inq_run):
    run, snapshots = inq_run
    assert [s["step"] for s in snapshots] == [1, 2, 3]
    assert [int(r["step"]) for r in run.metrics()] == [1, 2, 3]
    assert [float(r["fixed_fraction"]) for r in run.metrics()] == list(SCHEDULE)
    result = run.result()
    assert result["steps"] == 3 and result["bits"] == BITS
    assert result["delta_pt"] == pytest.approx(
        (result["test_accuracy"] - result["source_test_accuracy"]) * 100, abs=1e-3
    )
    assert result["test_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_every_weight_ends_in_the_layer_level_set(inq_run):
    run, _ = inq_run
    levels = run.config()["tool"]["levels"]
    model = run.load_model()
    from tools.retrain import quantizable_layers

    layers = quantizable_layers(model)
    assert [layer.name for layer in layers] == run.config()["tool"]["layers"]
    for layer in layers:
        n1, n2 = levels[layer.name]["n1"], levels[layer.name]["n2"]
        assert n1 - n2 + 1 == 2 ** (BITS - 1) // 2
        mags = po2_magnitudes(n1, n2)
        w = layer.kernel.numpy()
        assert np.isin(w, np.concatenate([-mags, mags])).all(), layer.name
        assert (w != 0).mean() > 0.3  # not collapsed to zero
        assert np.abs(w).max() == 2.0**n1


def test_levels_come_from_the_source_weights(inq_run, float_run):
    from pipeline.quantizers.po2 import inq_exponents
    from tools.retrain import quantizable_layers

    run, _ = inq_run
    levels = run.config()["tool"]["levels"]
    for layer in quantizable_layers(float_run.load_model()):
        s = float(np.abs(layer.kernel.numpy()).max())
        assert (levels[layer.name]["n1"], levels[layer.name]["n2"]) == inq_exponents(s, BITS)


def test_first_partition_is_by_source_magnitude(inq_run, float_run, kernels):
    _, snapshots = inq_run
    source = kernels(float_run.load_model())
    for name, w in source.items():
        free = snapshots[0]["free"][name]
        assert (~free).sum() == round(0.5 * w.size)
        assert np.abs(w[~free]).min() >= np.abs(w[free]).max()


def test_fixed_weights_are_bit_identical_across_retraining(inq_run):
    _, snapshots = inq_run
    for before, after in zip(snapshots, snapshots[1:], strict=False):
        for name, w in before["kernels"].items():
            fixed = ~before["free"][name]
            # Exact bits, not allclose: the view compares float32 words.
            assert np.array_equal(
                w[fixed].view(np.uint32), after["kernels"][name][fixed].view(np.uint32)
            ), name
            # ... while the weights still float were really retrained.
            still_free = before["free"][name] & after["free"][name]
            if still_free.any():
                assert (w[still_free] != after["kernels"][name][still_free]).any(), name


def test_fixed_weights_are_on_the_grid_at_every_step(inq_run):
    run, snapshots = inq_run
    levels = run.config()["tool"]["levels"]
    for snap in snapshots:
        for name, w in snap["kernels"].items():
            mags = po2_magnitudes(levels[name]["n1"], levels[name]["n2"])
            fixed = ~snap["free"][name]
            assert np.isin(w[fixed], np.concatenate([-mags, mags])).all()
            if (~fixed).any():
                assert not np.isin(w[~fixed], mags).all()  # the float ones are not (yet)


def test_saved_model_matches_the_last_step(inq_run, kernels):
    run, snapshots = inq_run
    saved = kernels(run.load_model())
    for name, w in snapshots[-1]["kernels"].items():
        assert np.array_equal(saved[name], w)


def test_batch_norm_statistics_match_the_quantized_weights(inq_run, float_run):
    """After the last projection nothing retrains; the moving statistics are re-estimated
    on the retraining images (they were the 87.5 %-step's, stale, before this was done)."""
    import tensorflow as tf

    from pipeline.layers.recalibrate import BN_SAMPLES
    from tools.steps import Job

    run, _ = inq_run
    model = run.load_model()
    x = Job(run, float_run, {"seed": 0, "train_samples": 500}).load_data().x_train[:BN_SAMPLES]
    norms = [layer for layer in model.layers
             if isinstance(layer, tf.keras.layers.BatchNormalization)]  # fmt: skip
    assert len(norms) == 4
    for norm in norms:
        h = tf.keras.Model(model.inputs, norm.input)(x, training=False).numpy()
        axes = tuple(range(h.ndim - 1))
        np.testing.assert_allclose(norm.moving_mean.numpy(), h.mean(axes), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(norm.moving_variance.numpy(), h.var(axes), rtol=1e-3)


def test_export_matches_keras(inq_run):
    from pipeline.export.exporter import export_run

    run, _ = inq_run
    report = export_run(run)  # raises ParityError if the .tflite disagrees with Keras
    assert run.file(runs.TFLITE).exists()
    assert report["parity_ok"] and report["argmax_agreement"] >= 0.999
    assert report["max_abs_diff"] < 1e-4
    assert report["test_samples"] == 300  # the source run's own test subset


def test_a_different_command_does_not_resume_it(inq_run, float_run):
    run, _ = inq_run
    with pytest.raises(UsageError, match="bits=3"):
        inq(float_run, run.path, bits=4, schedule=SCHEDULE, epochs_per_step=1, train_samples=500)
    # The finished run is returned as it is, without retraining.
    same = dict(schedule=SCHEDULE, epochs_per_step=1, train_samples=500, progress=False)
    assert inq(float_run, run.path, BITS, **same) == run


@pytest.mark.parametrize(
    "args",
    [["--bits", "1"], ["--bits", "9"], ["--bits", "4", "--schedule", "0.5,0.9"],
     ["--bits", "4", "--schedule", "x"], ["--bits", "4", "--train-samples", "-1"]],  # fmt: skip
)
def test_cli_rejects_bad_arguments_in_one_line(args, rejected_in_one_line):
    rejected_in_one_line(main, args)

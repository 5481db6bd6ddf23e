"""Binary methods: policy (what is quantized where, optimizer, config) and, per method, a
tiny model that trains without NaN and exports to a .tflite matching Keras."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401
from pipeline.layers.shift_batchnorm import ShiftBatchNormalization
from pipeline.layers.xnor import XnorConv2D, XnorDense
from pipeline.methods import Position, make_method, method_names
from pipeline.methods.optimizers import ShiftAdaMax
from pipeline.quantizers.binary import StochasticBinary, XnorWeightSign

BINARY = ["binaryconnect", "binaryconnect-stochastic", "bnn", "bnn-shift", "bwn", "xnor"]
# binary weights AND binary activations: LCE turns the hidden convolution into LceBconv2d
BCONV = {"bnn", "bnn-shift", "xnor"}


def test_all_binary_methods_are_registered_with_paper_and_bits():
    assert set(BINARY) <= set(method_names())
    for name in BINARY:
        method = make_method(name)
        assert method.paper.startswith(("Courbariaux", "Hubara", "Rastegari"))
        assert method.bits()["w"] == 1
        assert method.bits()["a"] == (1 if name in BCONV else 32)
        config = json.loads(json.dumps(method.config()))  # recorded in config.json
        assert {"quantize_first", "quantize_last", "optimizer_name", "lr_schedule"} <= set(config)


def test_first_and_last_layer_policy_defaults_follow_the_papers():
    for name in ("binaryconnect", "binaryconnect-stochastic", "bnn", "bnn-shift"):
        m = make_method(name)
        assert m.quantize_first and m.quantize_last
    for name in ("bwn", "xnor"):
        m = make_method(name)
        assert not m.quantize_first and not m.quantize_last
        assert m.dense(10, Position.LAST).kernel_quantizer is None
    m = make_method("xnor", quantize_last=True)
    assert isinstance(m.dense(10, Position.LAST), XnorDense)


def test_binaryconnect_gradient_is_straight_through_without_mask():
    method = make_method("binaryconnect")
    layer = method.dense(2, Position.HIDDEN)
    x = tf.constant([[2.0, -3.0]])  # float input: BinaryConnect never quantizes it
    layer.build((None, 2))
    layer.kernel.latent_variable.assign([[0.5, -0.2], [-0.7, 0.9]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * tf.constant([[1.0, 2.0]]))
    np.testing.assert_allclose(layer(x), [[2 + 3, -2 - 3]])  # x @ sign(W)
    np.testing.assert_allclose(tape.gradient(loss, layer.kernel.latent_variable),
                               [[2.0, 4.0], [-3.0, -6.0]])  # fmt: skip
    np.testing.assert_allclose(tape.gradient(loss, x), [[1 - 2, -1 + 2]])  # unmasked


def test_bnn_ste_masks_inputs_and_weights_outside_unit_interval():
    layer = make_method("bnn").dense(1, Position.HIDDEN)
    layer.build((None, 3))
    layer.kernel.latent_variable.assign([[0.5], [-1.5], [0.2]])
    x = tf.Variable([[0.3, -2.0, 1.0]])
    with tf.GradientTape() as tape:
        out = layer(x)
    assert float(out) == 1 * 1 + (-1) * (-1) + 1 * 1
    dx, dw = tape.gradient(out, [x, layer.kernel.latent_variable])
    np.testing.assert_allclose(dx, [[1.0, 0.0, 1.0]])  # |x| > 1 masked
    np.testing.assert_allclose(dw, [[1.0], [0.0], [1.0]])  # |w| > 1 masked (sign(x)=+1,-1,+1)


def test_binaryconnect_latent_weights_start_and_stay_in_the_glorot_range():
    """U(-H, H) initialisation and clipping to [-H, H], H = sqrt(1.5 / (fan_in + fan_out)):
    the authors' [-1, 1] range with the per-layer learning rate x 1/H."""
    from pipeline.quantizers.binary import GlorotClip, glorot_bound

    for name in ("binaryconnect", "binaryconnect-stochastic"):
        layer = make_method(name).conv2d(64, 5, Position.HIDDEN)
        layer.build((None, 12, 12, 32))
        w = layer.kernel.latent_variable.numpy()
        h = glorot_bound(w.shape)  # 0.025
        assert np.abs(w).max() <= h and np.abs(w).max() > 0.99 * h
        assert abs(np.abs(w).mean() - h / 2) < 0.01 * h  # uniform: E|w| = H/2
        assert isinstance(layer.kernel_constraint, GlorotClip)
    old = make_method("binaryconnect", glorot_scaling=False).conv2d(64, 5, Position.HIDDEN)
    assert old.kernel_constraint is not None and not isinstance(old.kernel_constraint, GlorotClip)


def test_layer_classes_per_method():
    assert isinstance(make_method("binaryconnect-stochastic").kernel_quantizer(Position.HIDDEN),
                      StochasticBinary)  # fmt: skip
    assert isinstance(make_method("bwn").kernel_quantizer(Position.HIDDEN), XnorWeightSign)
    xnor = make_method("xnor")
    assert isinstance(xnor.conv2d(32, 3, Position.HIDDEN), XnorConv2D)
    assert type(xnor.conv2d(32, 3, Position.FIRST)) is lq.layers.QuantConv2D
    shift = make_method("bnn-shift")
    assert isinstance(shift.normalization(), ShiftBatchNormalization)
    assert isinstance(shift.optimizer(shift.learning_rate), ShiftAdaMax)
    assert shift.learning_rate == 2.0**-10
    assert isinstance(make_method("bnn-shift", optimizer_name="adam").optimizer(1e-3),
                      tf.keras.optimizers.Adam)  # fmt: skip
    # The ablations that swap one shift-based part for its standard version.
    adamax = make_method("bnn-shift", optimizer_name="adamax").optimizer(1e-3)
    assert type(adamax) is tf.keras.optimizers.Adamax
    assert (adamax.beta_1, adamax.beta_2) == (1 - 2.0**-3, 1 - 2.0**-10)
    norm = make_method("bnn-shift", shift_batch_norm=False).normalization()
    assert type(norm) is tf.keras.layers.BatchNormalization and not norm.scale  # as bnn's


@pytest.mark.parametrize("name", BINARY)
def test_trains_and_exports_matching_keras(name, exported_methods):
    result = exported_methods["methods"][name]
    assert np.isfinite(result["loss"]).all()
    assert result["changed"] == result["n_weights"]  # every trainable weight moved
    np.testing.assert_allclose(result["restored"], result["keras"], atol=1e-6)
    assert len(result["tflite"]) == 1  # exactly one .tflite output matches this model


def test_binary_weights_and_activations_become_lce_bconv2d(exported_methods):
    # One hidden binary convolution per method with binary inputs (bnn, bnn-shift, xnor);
    # float-activation methods (binaryconnect*, bwn) and ternary ones stay CONV_2D.
    assert exported_methods["ops"].get("LceBconv2d", 0) == len(BCONV)


def test_shift_adamax_state_is_saved_and_reloaded(exported_methods, tmp_path):
    from pipeline.serialization import load_keras_model

    model = exported_methods["methods"]["bnn-shift"]["model"]
    model.save(tmp_path / "bnn-shift.keras")
    restored = load_keras_model(tmp_path / "bnn-shift.keras")
    assert isinstance(restored.optimizer, ShiftAdaMax)
    assert int(restored.optimizer.iterations) == 4


def _fit_at_method_rate(method, build, tiny_data, epochs: int) -> tuple[float, float]:
    """Train the tiny model with the method's own optimizer and default learning rate;
    returns (train accuracy of the last epoch, accuracy at inference)."""
    x, y = tiny_data
    tf.keras.utils.set_random_seed(0)
    model = build(method)
    # Eager: 48 tiny steps run faster than tracing the training graph.
    model.compile(method.optimizer(method.learning_rate), "sparse_categorical_crossentropy",
                  ["accuracy"], run_eagerly=True)  # fmt: skip
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return history.history["accuracy"][-1], model.evaluate(x, y, verbose=0)[1]


def test_stochastic_binaryconnect_learns_at_the_papers_learning_rate(build_tiny, tiny_data):
    """At Adam's 1e-3 the latent weights must reach the saturated region of
    p = hard_sigmoid(w/H) within a few dozen steps, as the authors' per-layer learning rate
    makes them (the Glorot-scaled range). With Glorot-initialised weights deep inside
    [-1, 1] instead (the old behaviour, ``glorot_scaling=False``) every weight is sampled
    with p ≈ 0.5 and this run stays at chance (23 % here, 25 % expected)."""
    method = make_method("binaryconnect-stochastic")
    train_acc, test_acc = _fit_at_method_rate(method, build_tiny, tiny_data, epochs=6)
    assert test_acc >= 0.9, (train_acc, test_acc)


@pytest.fixture(scope="module")
def stochastic_run(tmp_path_factory):
    """binaryconnect-stochastic trained by ``pipeline.train`` for one epoch on 512 MNIST
    images (fewer than BN_SAMPLES: all of them re-estimate the statistics)."""
    from pipeline.train.trainer import TrainConfig, train

    config = TrainConfig(method="binaryconnect-stochastic", epochs=1, train_samples=512,
                         test_samples=256, batch_size=64)  # fmt: skip
    return train(config, out=tmp_path_factory.mktemp("runs") / "bc-stoch", progress=False)


def _norm_statistics(model, x):
    """Each Keras batch norm's (moving mean, moving variance, input mean, input variance),
    the input computed in inference mode, i.e. with the weights binarized by sign()."""
    out = []
    for norm in [n for n in model.layers if isinstance(n, tf.keras.layers.BatchNormalization)]:
        probe = tf.keras.Model(model.inputs, norm.input)
        h = probe(x, training=False).numpy().astype(np.float64)
        np.testing.assert_array_equal(h, probe(x, training=False).numpy())  # deterministic
        axes = tuple(range(h.ndim - 1))
        out.append((norm.moving_mean.numpy(), norm.moving_variance.numpy(),
                    h.mean(axes), h.var(axes)))  # fmt: skip
    return out


def test_stochastic_binaryconnect_batch_norm_is_re_estimated_with_sign_weights(stochastic_run):
    """BN's moving statistics are collected under sampled weights during training; after
    training they must be those of the deterministic (inference) network, and the
    recorded accuracy that of the saved, re-estimated model. Before re-estimation existed
    (the checkpoint's statistics here) they were far from it."""
    from pipeline.data import normalize
    from pipeline.runs import CHECKPOINT
    from pipeline.train.trainer import TrainConfig, load_data

    run = stochastic_run
    assert run.config()["method"]["recalibrate_bn"] is True
    assert make_method("binaryconnect").recalibrate_bn is False
    result = run.result()
    ds = load_data(TrainConfig.from_dict(run.config()["train"]))
    x = normalize(ds.x_train)
    model = run.load_model()
    stats = _norm_statistics(model, x)
    assert len(stats) == result["batch_norm_recalibration"]["layers"] >= 3
    assert result["batch_norm_recalibration"]["images"] == 512
    for moving_mean, moving_var, mean, var in stats:
        np.testing.assert_allclose(moving_mean, mean, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(moving_var, var, rtol=1e-3, atol=1e-5)
    # The training-time statistics (saved in the last epoch's checkpoint) do not match.
    stale = _norm_statistics(run.load_model(CHECKPOINT), x)
    assert max(np.abs(s[1] / s[3] - 1).max() for s in stale) > 0.1
    _, accuracy = model.evaluate(normalize(ds.x_test), ds.y_test, verbose=0)
    assert accuracy == pytest.approx(result["test_accuracy"], abs=1e-6)
    # "before" is the network as trained, i.e. the last checkpoint (no finalize step here).
    _, before = run.load_model(CHECKPOINT).evaluate(normalize(ds.x_test), ds.y_test, verbose=0)
    recorded = result["batch_norm_recalibration"]["test_accuracy_before"]
    assert recorded == pytest.approx(before, abs=1e-6)
    assert (recorded * len(ds.y_test)) == pytest.approx(round(recorded * len(ds.y_test)))


def test_resuming_after_training_re_estimates_from_the_checkpoint_once(stochastic_run, tmp_path):
    """A run interrupted after its last epoch (before result.json) resumes from the
    checkpoint without training and ends with the very same statistics and accuracy."""
    import shutil

    from pipeline import runs
    from pipeline.train.trainer import resume

    copy = runs.Run(tmp_path / "copy")
    shutil.copytree(stochastic_run.path, copy.path)
    copy.file(runs.RESULT).unlink()
    copy.file(runs.MODEL).unlink()
    resume(copy, progress=False)
    assert len(copy.metrics()) == 1  # no epoch trained again
    first, again = stochastic_run.load_model(), copy.load_model()
    for a, b in zip(first.non_trainable_weights, again.non_trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert copy.result()["test_accuracy"] == stochastic_run.result()["test_accuracy"]

"""Soft weight-sharing: the mixture prior's formula, the snap, the compression count,
and a tiny model trained, snapped, saved, reloaded and exported."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.errors import UsageError
from pipeline.methods import make_method
from pipeline.methods.soft_weight_sharing import GaussianMixturePrior, compression_report


def normal_pdf(w, mu, sigma):
    return np.exp(-0.5 * ((w - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def test_prior_complexity_cost_matches_the_mixture_formula():
    prior = GaussianMixturePrior(components=3, pi_zero=0.9, init_std=0.2)
    prior.build()
    prior.set_means([-0.5, 0.5])
    prior._rhos.assign([0.3, -0.3])  # proportions (1 - .9) · softmax(scale · rhos)
    w = [np.array([[0.1, -0.4], [0.6, 0.0]], np.float32), np.array([0.45], np.float32)]
    got = float(prior(w))

    rest = np.exp(prior.RHO_LR * np.array([0.3, -0.3]))
    pis = np.concatenate([[0.9], 0.1 * rest / rest.sum()])
    mus, sigma = np.array([0.0, -0.5, 0.5]), 0.2
    flat = np.concatenate([x.ravel() for x in w]).astype(np.float64)
    density = sum(p * normal_pdf(flat, m, sigma) for p, m in zip(pis, mus, strict=True))
    lam = 1 / sigma**2
    hyper = [(5000 - 1) * math.log(lam) - 2 * lam] + [(250 - 1) * math.log(lam) - 0.1 * lam] * 2
    expected = -np.sum(np.log(density)) - sum(hyper)
    assert got == pytest.approx(expected, rel=1e-5)


def test_snap_picks_the_most_responsible_component():
    prior = GaussianMixturePrior(components=3, pi_zero=0.5, init_std=0.1)
    prior.build()
    prior.set_means([-1.0, 1.0])
    # π = (.5, .25, .25), equal σ: the boundary with zero moves from 0.5 to
    # 0.5 + σ² ln 2 / 1 = 0.5069 — 0.505 still snaps to 0, 0.51 to 1.
    snapped = prior.snap(np.array([[0.505, 0.51, -0.7], [3.0, -0.02, 0.0]]))
    np.testing.assert_allclose(snapped, [[0, 1, -1], [1, 0, 0]], atol=1e-6)


def test_compression_report_counts_han_et_al_storage():
    dense = np.zeros(100, np.float32)
    dense[[3, 40, 41]] = [0.5, -0.5, 0.5]  # gaps 4, 37, 1 with 5-bit indices: 1 filler
    conv = np.zeros((2, 2, 1, 2), np.float32)
    conv[0, 0, 0, 1] = 0.25
    report = compression_report([conv, dense], [8, 5])
    # 3 non-zero values → 2-bit codes; conv: 1 entry × (2 + 8); dense: 4 × (2 + 5);
    # codebook 3 × 32 bits. Dense size 108 × 32 bits.
    assert report["sws_distinct_values"] == 4  # with zero
    assert report["sws_nonzero_fraction"] == pytest.approx(4 / 108)
    assert report["sws_compression_ratio"] == pytest.approx(108 * 32 / (10 + 28 + 96))
    assert compression_report([np.zeros(5)], [5])["sws_compression_ratio"] is None


def test_options_are_validated_and_recorded():
    method = make_method("soft-weight-sharing", components=9, tau=0.01)
    assert method.config()["components"] == 9 and method.bits()["w"] == 4
    with pytest.raises(UsageError, match="pi_zero"):
        make_method("soft-weight-sharing", pi_zero=1.0)


def test_trains_snaps_reloads_and_exports(train_tiny, tiny_data, export_matches, tmp_path):
    method = make_method("soft-weight-sharing", n_train=256, pretrain_fraction=0.25)
    model, history = train_tiny(method, steps=8, epochs=8)
    assert np.all(np.isfinite(history.history["loss"]))
    assert float(model.prior.loss_weight) == pytest.approx(0.003 / 256)  # prior is on
    assert method.callbacks()  # the schedule that switched it on
    x, _ = tiny_data
    report = method.finalize(model)
    kernels = np.concatenate([layer.kernel.numpy().ravel() for layer in model.network.layers
                              if getattr(layer, "kernel", None) is not None])  # fmt: skip
    means = model.prior.means.numpy()
    assert np.isin(kernels, means).all()  # every weight is a component mean
    assert report["sws_distinct_values"] == len(np.unique(kernels)) <= method.components
    assert report["sws_nonzero_fraction"] < 0.5
    assert report["sws_compression_ratio"] > 5
    # Not asserted: accuracy after the snap. On the shared 4-layer tiny model with 6 prior
    # epochs it is near chance (0.29 on 4 classes): π₀ = 0.99 prunes too hard on so short
    # a schedule. Open issue (see the methods-multibit report).

    path = tmp_path / "sws.keras"
    model.save(path)
    from pipeline.serialization import load_keras_model

    loaded = load_keras_model(path)
    np.testing.assert_allclose(loaded.predict(x[:16], verbose=0), model.predict(x[:16], verbose=0))
    assert float(loaded.prior.loss_weight) == float(model.prior.loss_weight)
    export_matches(model, x[:32])


def test_prior_adds_loss_only_in_training(build_tiny):
    method = make_method("soft-weight-sharing")
    model = method.wrap_model(build_tiny(method))
    model.prior.loss_weight.assign(1.0)
    x = tf.zeros((2, 12, 12, 1))
    model(x, training=False)
    assert not model.losses
    model(x, training=True)
    assert len(model.losses) == 1 and np.isfinite(float(model.losses[0]))


def test_a_snap_that_zeroes_the_network_warns():
    """Fashion-MNIST, 2 epochs: 99.99 % of weights snapped to 0 and accuracy fell from
    91 % to 10 % with no word said; now the result carries a warning pipeline.train prints."""
    method = make_method("soft-weight-sharing")
    inputs = tf.keras.Input((64,))
    dense = tf.keras.layers.Dense(32)
    model = method.wrap_model(tf.keras.Model(inputs, dense(inputs)))
    model.prior.set_means(np.linspace(-1, 1, model.prior.components - 1))
    rng = np.random.default_rng(0)
    dense.kernel.assign(rng.choice(model.prior.means.numpy(), (64, 32)))  # on the means
    assert "warnings" not in method.finalize(model)
    dense.kernel.assign(rng.normal(0, 1e-4, (64, 32)))  # all inside the zero component
    report = method.finalize(model)
    assert report["sws_nonzero_fraction"] == 0
    assert "checkpoint.keras" in report["warnings"][0]

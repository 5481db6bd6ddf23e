"""Soft weight-sharing (Ullrich, Meeds & Welling, ICLR 2017, arXiv:1702.04008).

A Gaussian-mixture prior over all weights is learned together with the network: the
weights cluster around the mixture means (most of them around the fixed zero component),
and at the end every weight is replaced by the mean of its most responsible component —
a network that stores a handful of distinct values and mostly zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.methods.base import Method
from pipeline.methods.registry import register

LOG_2PI = math.log(2.0 * math.pi)
# Fewer non-zero weights than this after the snap: a collapsed network, not a sparse one
# (the paper's sparsest, LeNet-5-Caffe, keeps 0.5 %; 2 epochs on Fashion-MNIST kept 0.01 %).
COLLAPSED = 5e-4


@tf.keras.utils.register_keras_serializable(package="bitlite")
class GaussianMixturePrior(tf.keras.layers.Layer):
    r"""The learned prior of soft weight-sharing (§3 of arXiv:1702.04008):

    \\[
    p(w) = \prod_i \sum_{j=0}^{J} \pi_j\, \mathcal N(w_i \mid \mu_j, \sigma_j^2),
    \qquad \mu_0 = 0,\ \pi_0 \text{ fixed}
    \\]

    Component 0 is pinned at zero with mixing proportion ``pi_zero`` (sparsity); the
    other ``components - 1`` means, all ``components`` precisions ``λ_j = 1/σ_j²`` and the
    other proportions (a softmax scaled to ``1 - π_0``) are trainable. Each precision has
    the paper's Gamma hyper-prior ``p(λ_j) ∝ λ_j^(α-1) e^(-β λ_j)`` (§6.1: (α, β) =
    (5000, 2) for the zero component, (250, 0.1) for the others, as in the authors'
    Keras tutorial). :meth:`call` returns the complexity cost

    \\[ L_C = -\log p(w) - \log p(\lambda) \\]

    Trainable parameters are stored scaled (``value = scale · variable``): with Adam, an
    update to the variable is about ``lr`` whatever its gradient, so the scale sets each
    group's effective learning rate relative to the network's — the authors' tutorial
    uses 5e-4 for the weights, 1e-4 for the means and 3e-3 for precisions and proportions.
    """

    # Effective learning rate of each group, relative to the network's (tutorial ratios).
    MEAN_LR, GAMMA_LR, RHO_LR = 1e-4 / 5e-4, 3e-3 / 5e-4, 3e-3 / 5e-4

    def __init__(self, components: int = 17, pi_zero: float = 0.99, init_std: float = 0.25,
                 zero_hyper: tuple[float, float] = (5000.0, 2.0),
                 hyper: tuple[float, float] = (250.0, 0.1), **kwargs: Any):  # fmt: skip
        super().__init__(**kwargs)
        self.components, self.pi_zero, self.init_std = components, pi_zero, init_std
        self.zero_hyper, self.hyper = tuple(zero_hyper), tuple(hyper)

    def build(self, input_shape: Any = None) -> None:
        j = self.components
        self._means = self.add_weight("means", (j - 1,), initializer="zeros")
        log_precision = -2.0 * math.log(self.init_std) / self.GAMMA_LR
        self._gammas = self.add_weight(
            "log_precisions", (j,), initializer=tf.keras.initializers.Constant(log_precision)
        )
        self._rhos = self.add_weight("rhos", (j - 1,), initializer="zeros")
        # The loss weight τ/N; 0 while the network is pre-trained (see SoftWeightSharing).
        self.loss_weight = self.add_weight("loss_weight", (), initializer="zeros", trainable=False)
        super().build(input_shape)

    # -- the mixture -------------------------------------------------------------------
    @property
    def means(self) -> tf.Tensor:
        return tf.concat([[0.0], self.MEAN_LR * self._means], 0)

    @property
    def log_precisions(self) -> tf.Tensor:
        return self.GAMMA_LR * self._gammas

    @property
    def log_proportions(self) -> tf.Tensor:
        rest = math.log(1.0 - self.pi_zero) + tf.nn.log_softmax(self.RHO_LR * self._rhos)
        return tf.concat([[math.log(self.pi_zero)], rest], 0)

    def set_means(self, means: np.ndarray) -> None:
        self._means.assign(np.asarray(means, np.float32) / self.MEAN_LR)

    def set_std(self, std: float) -> None:
        self._gammas.assign(tf.fill([self.components], -2.0 * math.log(std) / self.GAMMA_LR))

    def log_joint(self, w: tf.Tensor) -> tf.Tensor:
        """``log π_j + log N(w_i | μ_j, σ_j²)`` for every weight i (rows), component j."""
        gamma = self.log_precisions
        sq = tf.square(w[:, None] - self.means[None, :])
        return self.log_proportions + 0.5 * (gamma - LOG_2PI) - 0.5 * tf.exp(gamma) * sq

    def call(self, weights: list[tf.Tensor]) -> tf.Tensor:
        w = tf.concat([tf.reshape(k, [-1]) for k in weights], 0)
        neg_log_prior = -tf.reduce_sum(tf.reduce_logsumexp(self.log_joint(w), axis=1))
        gamma = self.log_precisions
        alpha = tf.constant([self.zero_hyper[0]] + [self.hyper[0]] * (self.components - 1))
        beta = tf.constant([self.zero_hyper[1]] + [self.hyper[1]] * (self.components - 1))
        neg_log_hyper = -tf.reduce_sum((alpha - 1.0) * gamma - beta * tf.exp(gamma))
        return neg_log_prior + neg_log_hyper

    def snap(self, w: np.ndarray) -> np.ndarray:
        """Every weight replaced by the mean of its most responsible component (§6.2)."""
        flat = tf.constant(np.asarray(w, np.float32).reshape(-1))
        best = tf.argmax(self.log_joint(flat), axis=1)
        return tf.gather(self.means, best).numpy().reshape(np.shape(w))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "components": self.components,
                "pi_zero": self.pi_zero, "init_std": self.init_std,
                "zero_hyper": list(self.zero_hyper), "hyper": list(self.hyper)}  # fmt: skip


def kernel_layers(network: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The layers whose kernels the prior covers: every convolution and dense layer."""
    return [layer for layer in network.layers if getattr(layer, "kernel", None) is not None]


@tf.keras.utils.register_keras_serializable(package="bitlite")
class SoftWeightSharingModel(tf.keras.Model):
    """A network trained under :class:`GaussianMixturePrior`: inference is the network's;
    in training the model adds ``loss_weight · L_C`` to the loss."""

    def __init__(self, network: tf.keras.Model, prior: GaussianMixturePrior, **kwargs: Any):
        super().__init__(**kwargs)
        self.network, self.prior = network, prior
        if not prior.built:
            prior.build()

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training:
            kernels = [layer.kernel for layer in kernel_layers(self.network)]
            self.add_loss(self.prior.loss_weight * self.prior(kernels))
        return self.network(inputs, training=training)

    def get_config(self) -> dict[str, Any]:
        return {
            "network": tf.keras.utils.serialize_keras_object(self.network),
            "prior": tf.keras.utils.serialize_keras_object(self.prior),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SoftWeightSharingModel:
        network = tf.keras.utils.deserialize_keras_object(config.pop("network"))
        prior = tf.keras.utils.deserialize_keras_object(config.pop("prior"))
        model = cls(network, prior, **config)
        # A subclassed model learns its input signature from a first call; the converter
        # needs it on a freshly loaded model too.
        model(tf.keras.Input(network.input_shape[1:]))
        return model


class PriorSchedule(tf.keras.callbacks.Callback):
    """Switches the prior on after the pre-training epochs (the paper retrains a
    pre-trained network, §6.1), placing the non-zero means evenly over the range of the
    pre-trained weights at that moment."""

    def __init__(self, method: SoftWeightSharing):
        super().__init__()
        self.method = method

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        prior: GaussianMixturePrior = self.model.prior
        start = self.method.pretrain_epochs(self.params.get("epochs", 1))
        if epoch < start:
            prior.loss_weight.assign(0.0)
            return
        if epoch == start or float(prior.loss_weight.numpy()) == 0.0:
            w = np.concatenate([layer.kernel.numpy().ravel()
                                for layer in kernel_layers(self.model.network)])  # fmt: skip
            means = np.linspace(w.min(), w.max(), prior.components - 1)
            prior.set_means(means)
            # Default σ: the spacing of the means, so the components tile the range.
            spacing = float(w.max() - w.min()) / max(prior.components - 2, 1)
            prior.set_std(self.method.init_std or spacing)
        prior.loss_weight.assign(self.method.tau / self.method.n_train)


@register
@dataclass
class SoftWeightSharing(Method):
    """Soft weight-sharing (Ullrich et al., arXiv:1702.04008): the loss is
    ``L_E + τ L_C`` (eq. 5), ``L_E`` the cross-entropy summed over the data set, ``L_C``
    the :class:`GaussianMixturePrior` complexity; per example that is the mean
    cross-entropy plus ``τ/N · L_C`` (``n_train`` = N; τ = 0.003 and J = 17 components,
    π₀ = 0.99, as the authors' tutorial). The first ``pretrain_fraction`` of the epochs
    trains without the prior (the paper starts from a pre-trained network); then the
    non-zero means are spread evenly over the weights' range, every σ starts at their
    spacing (``init_std`` overrides it; the tutorial's fixed 0.25 suits its 30-epoch
    retraining, not a few epochs) and the mixture is learned jointly with the weights.
    Finally every weight snaps to its most responsible component's mean and the
    compression is reported.

    All convolution and dense kernels are under the prior (the paper compresses every
    layer); layers are float otherwise. Adam as in the tutorial, with cosine decay.
    """

    name = "soft-weight-sharing"
    summary = "learned Gaussian-mixture prior, weights snapped to its means"
    paper = "Ullrich et al. 2017, arXiv:1702.04008"

    components: int = 17
    pi_zero: float = 0.99
    tau: float = 0.003
    n_train: int = 60000
    init_std: float | None = None
    pretrain_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.components < 2:
            raise ValueError("components must be at least 2 (zero and one more)")
        if not 0.0 < self.pi_zero < 1.0:
            raise ValueError("pi_zero must be strictly between 0 and 1")
        if not 0.0 <= self.pretrain_fraction < 1.0:
            raise ValueError("pretrain_fraction must be in [0, 1)")

    def bits(self) -> dict[str, int]:
        return {"w": math.ceil(math.log2(self.components)), "a": 32, "g": 32}

    def pretrain_epochs(self, epochs: int) -> int:
        return int(self.pretrain_fraction * epochs)

    def wrap_model(self, model: tf.keras.Model) -> tf.keras.Model:
        prior = GaussianMixturePrior(self.components, self.pi_zero, self.init_std or 0.25,
                                     name="mixture_prior")  # fmt: skip
        wrapped = SoftWeightSharingModel(model, prior, name=model.name)
        wrapped(tf.keras.Input(model.input_shape[1:]))  # sets the input signature
        return wrapped

    def callbacks(self) -> list[tf.keras.callbacks.Callback]:
        return [PriorSchedule(self)]

    def finalize(self, model: tf.keras.Model) -> dict[str, Any]:
        """Snap every kernel to the component means; report what that stores."""
        layers = kernel_layers(model.network)
        for layer in layers:
            layer.kernel.assign(model.prior.snap(layer.kernel.numpy()))
        report = compression_report([layer.kernel.numpy() for layer in layers],
                                    [_index_bits(layer) for layer in layers])  # fmt: skip
        if report["sws_nonzero_fraction"] < COLLAPSED:
            report["warnings"] = [
                f"soft-weight-sharing: {1 - report['sws_nonzero_fraction']:.2%} of the weights "
                "snapped to zero — the mixture had not separated from the zero component, so "
                "the network is (nearly) constant. Train with the prior for longer (the paper "
                "retrains for tens of epochs), e.g. more --epochs; the weights before the snap "
                "are in this run's checkpoint.keras"
            ]
        return report


def _index_bits(layer: tf.keras.layers.Layer) -> int:
    # Deep Compression (Han et al., arXiv:1510.00149, §2): relative indices of 8 bits in
    # convolutions and 5 bits in fully connected layers — the format the paper reports in.
    return 8 if len(layer.kernel.shape) == 4 else 5


def compression_report(kernels: list[np.ndarray], index_bits: list[int]) -> dict[str, Any]:
    """Sparse storage in Han et al.'s format: each non-zero weight stores a codebook
    index (``⌈log2 K⌉`` bits for K distinct non-zero values) and the distance to the
    previous non-zero (``index_bits``; a longer gap costs a filler zero entry), plus a
    float32 codebook. Ratio = 32-bit dense size / that."""
    values = np.unique(np.concatenate([k.ravel() for k in kernels]))
    nonzero_values = values[values != 0]
    code_bits = max(1, math.ceil(math.log2(max(len(nonzero_values), 1))))
    total = nonzero = 0
    stored_bits = 32 * len(nonzero_values)
    for kernel, bits in zip(kernels, index_bits, strict=True):
        flat = kernel.ravel()
        where = np.flatnonzero(flat)
        gaps = np.diff(np.concatenate([[-1], where]))
        fillers = int(np.sum((gaps - 1) // (2**bits)))
        stored_bits += (len(where) + fillers) * (code_bits + bits)
        total += flat.size
        nonzero += len(where)
    return {
        "sws_distinct_values": int(len(values)),
        "sws_nonzero_fraction": nonzero / total,
        # Nothing left to store (every weight snapped to 0) has no meaningful ratio.
        "sws_compression_ratio": 32 * total / stored_bits if nonzero else None,
    }

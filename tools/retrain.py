"""Retraining a trained model while part of its weights stay fixed — the tools' one loop.

INQ fixes individual weights (an element mask per kernel), progressive quantization
fixes whole layers, and the all-at-once baseline trains float shadow weights through a
projection (straight-through estimator). All three are :func:`retrain` with different
arguments, so they differ only in what is fixed, never in how training runs.

Fixed weights are provably unchanged: their gradients are multiplied by zero and every
call uses a fresh Adam, whose update for an element that has only ever seen zero
gradients is ``lr · 0 / (sqrt(0) + ε) = 0`` exactly. Whole fixed layers are simply not
handed to the optimizer.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from pipeline.errors import UsageError

QUANTIZABLE = (tf.keras.layers.Conv2D, tf.keras.layers.Dense)  # larq's Quant* subclass these


def quantizable_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """Convolution and dense layers with a kernel, input side first (graph order).

    A layer that already quantizes its kernel in the forward pass (a larq
    ``kernel_quantizer``) is refused: projecting its latent weights would change nothing
    the network computes. Input (activation) quantizers are kept as they are.
    """
    layers = [layer for layer in model.layers if isinstance(layer, QUANTIZABLE)]
    for layer in layers:
        if getattr(layer, "kernel_quantizer", None) is not None:
            raise UsageError(
                f"layer '{layer.name}' already quantizes its weights "
                f"({type(layer.kernel_quantizer).__name__}); the tools start from a float run "
                "(python -m pipeline.train --method float)"
            )
    if not layers:
        raise UsageError(f"model '{model.name}' has no convolution or dense layers to quantize")
    return layers


@dataclass
class Data:
    """Normalized train/test arrays for retraining and evaluation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def evaluate(model: tf.keras.Model, data: Data, batch_size: int = 1024) -> tuple[float, float]:
    """Test accuracy and mean cross-entropy (the model outputs probabilities)."""
    # Eager calls: ``model.predict`` spends seconds tracing a new graph for every model.
    probs = np.concatenate([
        model(data.x_test[i : i + batch_size], training=False).numpy()
        for i in range(0, len(data.x_test), batch_size)
    ])  # fmt: skip
    picked = probs[np.arange(len(data.y_test)), data.y_test]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    return float(np.mean(probs.argmax(-1) == data.y_test)), loss


Projector = Callable[[tf.Tensor], tf.Tensor]


def retrain(
    model: tf.keras.Model,
    data: Data,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    masks: dict[int, np.ndarray] | None = None,
    frozen: Sequence[tf.Variable] = (),
    ste: Sequence[tuple[tf.Variable, Projector]] = (),
    desc: str = "retrain",
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` in place for ``epochs``; returns the last epoch's train loss/accuracy.

    masks: ``id(variable) -> array`` of 1 (trainable) / 0 (fixed), element-wise.
    frozen: variables left out of training entirely.
    ste: ``(kernel, project)`` pairs: the forward pass sees ``project(kernel)`` and the
        gradient updates the float kernel unchanged (straight-through estimator).
    """
    masks = masks or {}
    frozen_ids = {id(v) for v in frozen}
    variables = [v for v in model.trainable_variables if id(v) not in frozen_ids]
    if not variables or epochs < 1:
        return {}
    grad_masks = [tf.constant(masks[id(v)], v.dtype) if id(v) in masks else None for v in variables]
    steps = math.ceil(len(data.x_train) / batch_size)
    optimizer = tf.keras.optimizers.Adam(
        tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps * epochs, alpha=0.01)
    )
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    shadows = [tf.Variable(k, trainable=False) for k, _ in ste]

    @tf.function(autograph=False)  # plain Python loops over a fixed list: nothing to convert
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for (kernel, project), shadow in zip(ste, shadows, strict=True):
            shadow.assign(kernel)
            kernel.assign(project(kernel))
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = loss_fn(y, probs) + tf.add_n([0.0, *model.losses])
        grads = tape.gradient(loss, variables)
        for (kernel, _), shadow in zip(ste, shadows, strict=True):
            kernel.assign(shadow)  # the update goes to the float weights (STE)
        grads = [g if m is None else g * m for g, m in zip(grads, grad_masks, strict=True)]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(probs, -1) == y, tf.float32))
        return loss, correct

    train_ds = (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    tf.keras.utils.set_random_seed(seed)
    stats: dict[str, float] = {}
    for epoch in range(epochs):
        bar = tqdm(total=steps, desc=f"{desc} epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=not progress, leave=False,
                   mininterval=0.5 if sys.stderr.isatty() else 15)  # fmt: skip
        total_loss, total_correct, seen = 0.0, 0.0, 0
        for x, y in train_ds:
            loss, correct = train_step(x, y)
            n = int(x.shape[0])
            total_loss += float(loss) * n
            total_correct += float(correct)
            seen += n
            bar.update(1)
            if bar.n % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}",
                                refresh=False)  # fmt: skip
        bar.close()
        stats = {"loss": total_loss / seen, "accuracy": total_correct / seen}
    return stats


def layer_variables(layer: tf.keras.layers.Layer) -> list[Any]:
    """Everything a layer trains (kernel and bias): what freezing the layer fixes."""
    return list(layer.trainable_weights)

"""What a quantization *method* is: policy over quantizers (the math lives in
``pipeline.quantizers`` and larq).

A method decides which quantizer goes on the weights and on the inputs of each layer,
which layers stay full precision (by :class:`Position`), the normalization and activation
between layers, and the optimizer. Models ask a method for their layers and never name a
quantizer themselves, so any model trains with any method.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import larq as lq
import tensorflow as tf

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

LR_SCHEDULES = ("cosine", "exponential", "constant")  # pipeline.train.trainer.build


class Position(enum.StrEnum):
    """Where a layer sits: the first layer's input is never quantized (it is the image)."""

    FIRST = "first"
    HIDDEN = "hidden"
    LAST = "last"


@dataclass
class Method:
    """Base policy: full precision everywhere. Subclasses override the hooks they need.

    Dataclass fields are the method's hyper-parameters: they can be set from the command
    line (``--wbits 2``) and are recorded in ``config.json``.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    paper: ClassVar[str] = ""
    optimizers: ClassVar[tuple[str, ...]] = ("adam", "sgd")  # what ``optimizer`` builds

    quantize_first: bool = True  # quantize the first layer's weights (its input never)
    quantize_last: bool = True  # quantize the last layer's weights and input
    learning_rate: float = 1e-3
    optimizer_name: str = "adam"
    lr_schedule: str = "cosine"  # "cosine" | "exponential" | "constant"
    # After training, re-estimate batch-norm statistics in inference mode on training
    # images (pipeline.layers.recalibrate), for methods whose training forward pass is not
    # the inference one (pipeline.train does it, after ``finalize``).
    recalibrate_bn: bool = False

    def check(self) -> None:
        """Reject option values the method would only fail on (or silently ignore) once
        training starts; raises ValueError, which ``make_method`` reports as usage."""
        if self.optimizer_name not in self.optimizers:
            raise ValueError(f"unknown optimizer_name '{self.optimizer_name}'; choose one "
                             f"of: {', '.join(self.optimizers)}")  # fmt: skip
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule '{self.lr_schedule}'; choose one of: "
                             f"{', '.join(LR_SCHEDULES)}")  # fmt: skip

    # -- what is quantized where -------------------------------------------------------
    def quantizes(self, position: Position) -> bool:
        if position is Position.FIRST:
            return self.quantize_first
        if position is Position.LAST:
            return self.quantize_last
        return True

    def kernel_quantizer(self, position: Position) -> Any:
        return None

    def input_quantizer(self, position: Position) -> Any:
        return None

    def kernel_constraint(self, position: Position) -> Any:
        return None

    def bits(self) -> dict[str, int]:
        """Bit widths of weights, activations and gradients (32 = float)."""
        return {"w": 32, "a": 32, "g": 32}

    # -- layers ------------------------------------------------------------------------
    def _quant_kwargs(self, position: Position) -> dict[str, Any]:
        if not self.quantizes(position):
            return {}
        kwargs: dict[str, Any] = {
            "kernel_quantizer": self.kernel_quantizer(position),
            "kernel_constraint": self.kernel_constraint(position),
        }
        if position is not Position.FIRST:
            kwargs["input_quantizer"] = self.input_quantizer(position)
        return kwargs

    def conv2d(self, filters: int, kernel_size: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)  # batch norm follows every convolution
        return lq.layers.QuantConv2D(filters, kernel_size, **self._quant_kwargs(position), **kwargs)

    def dense(self, units: int, position: Position, **kwargs: Any):
        kwargs.setdefault("use_bias", False)
        return lq.layers.QuantDense(units, **self._quant_kwargs(position), **kwargs)

    def normalization(self) -> tf.keras.layers.Layer:
        return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)

    def activation(self, x: tf.Tensor) -> tf.Tensor:
        """The non-linearity after normalization (ReLU for float networks)."""
        return tf.keras.layers.ReLU()(x)

    # -- training ----------------------------------------------------------------------
    def optimizer(self, learning_rate: Any) -> tf.keras.optimizers.Optimizer:
        if self.optimizer_name == "adam":
            return tf.keras.optimizers.Adam(learning_rate)
        if self.optimizer_name == "sgd":
            return tf.keras.optimizers.SGD(learning_rate, momentum=0.9)
        raise ValueError(f"{self.name}: unknown optimizer {self.optimizer_name}")

    def wrap_model(self, model: tf.keras.Model) -> tf.keras.Model:
        """Hook to transform the built model (e.g. TF-MOT's ``quantize_model``)."""
        return model

    def callbacks(self) -> list[tf.keras.callbacks.Callback]:
        return []

    def finalize(self, model: tf.keras.Model) -> dict[str, Any]:
        """Hook after training (e.g. snap weights to cluster centres); extra results."""
        return {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self), "bits": self.bits()}

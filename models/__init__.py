"""Architectures. Each builder takes a method and never names a quantizer itself."""

import pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from models.registry import MODELS, build_model, check_name, model_names

__all__ = ["MODELS", "build_model", "check_name", "model_names"]

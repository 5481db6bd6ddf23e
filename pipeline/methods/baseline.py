"""Full-precision baselines."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.methods.base import Method
from pipeline.methods.registry import register


@register
@dataclass
class Float(Method):
    """Full-precision float32 training: the reference every method is compared with."""

    name = "float"
    summary = "full-precision float32 baseline"
    paper = ""

"""Start a model from another model's weights: seed 004's "quantize a trained network".

Seed 004 §3.2 ("simple quantization") trains a float network first, then quantizes all
its weights at once and keeps training with float shadow weights. Here that is a run
with ``init_from`` pointing at the float run: the same architecture built with another
method, its weights copied layer by layer. Layers are matched in build order (the
architecture is the same, only quantizers and constraints differ) and variables by
name within a layer (``kernel``, ``gamma``, ``moving_mean``, …); a variable that only
one side has — e.g. the batch-norm scale that BinaryNet drops before a sign — keeps its
fresh initial value.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import UsageError


def _variables(layer: Any) -> dict[str, Any]:
    return {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}


def copy_weights(source: Any, target: Any) -> int:
    """Copy ``source``'s weights into ``target`` (same architecture); returns how many."""
    src = [layer for layer in source.layers if layer.weights]
    dst = [layer for layer in target.layers if layer.weights]
    if len(src) != len(dst):
        raise UsageError(
            f"cannot start {target.name} from {source.name}: {len(src)} layers with weights "
            f"there, {len(dst)} here (init_from needs the same architecture)"
        )
    copied = 0
    for a, b in zip(src, dst, strict=True):
        theirs = _variables(a)
        for name, var in _variables(b).items():
            if name in theirs and tuple(theirs[name].shape) == tuple(var.shape):
                var.assign(theirs[name])
                copied += 1
            elif name in theirs:
                raise UsageError(
                    f"cannot start {target.name} from {source.name}: {b.name}/{name} has "
                    f"shape {tuple(var.shape)} here, {tuple(theirs[name].shape)} there"
                )
    return copied

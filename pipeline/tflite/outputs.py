"""Choose what a .tflite file outputs: the logits behind a final softmax, or any tensors.

Parity on random inputs compares a converted model with Keras by the largest output
difference. A classifier's softmax hides most of that difference: on a network whose
logits are large (random weights, deep binary nets), the softmax saturates to a one-hot
vector, and two sets of logits that differ by 10 % give the same probabilities. So
parity compares the *logits* (the input of the final softmax): :func:`strip_softmax`
drops a final ``SOFTMAX`` op and makes its input the file's output. :func:`with_outputs`
makes intermediate tensors outputs too (layer-by-layer diagnosis: an output tensor keeps
its value after the invoke, since TFLite does not reuse its memory).

No TensorFlow: the file is edited through the flatbuffer schema (:mod:`pipeline.tflite`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.tflite.reader import schema
from pipeline.tflite.rewrite import load, pack


def _builtin(model: Any, op: Any) -> int | None:
    """The op's builtin operator code; None for a custom op."""
    code = model.operatorCodes[op.opcodeIndex]
    return None if code.customCode else max(code.builtinCode, code.deprecatedBuiltinCode)


def _retarget_signatures(model: Any, old: int, new: int) -> None:
    """Signature outputs that name tensor ``old`` name ``new`` instead: interpreters that
    read outputs through the signature then see the same tensor as the subgraph's."""
    for signature in model.signatureDefs or []:
        for entry in signature.outputs or []:
            if entry.tensorIndex == old:
                entry.tensorIndex = new


def strip_softmax(flatbuffer: bytes) -> bytes | None:
    """The same file without its final ``SOFTMAX`` (the op producing its only output),
    whose input — the logits — becomes the output; None when the output is not a softmax's."""
    model = load(flatbuffer)
    graph = model.subgraphs[0]
    if len(graph.outputs) != 1:
        return None
    output = int(graph.outputs[0])
    softmax = schema().BuiltinOperator.SOFTMAX
    for i, op in enumerate(graph.operators or []):
        if output in list(op.outputs) and _builtin(model, op) == softmax:
            logits = int(op.inputs[0])
            graph.operators = [o for j, o in enumerate(graph.operators) if j != i]
            graph.outputs = [logits]
            _retarget_signatures(model, output, logits)
            return pack(model)
    return None


def with_outputs(flatbuffer: bytes, tensors: Sequence[int]) -> bytes:
    """The same file with ``tensors`` (indices in the first subgraph) as its outputs, in
    that order, instead of its own."""
    model = load(flatbuffer)
    graph = model.subgraphs[0]
    count = len(graph.tensors)
    bad = [t for t in tensors if not 0 <= t < count]
    if bad or not tensors:
        raise ValueError(f"no such tensors {bad} (the file has {count})" if bad else "no outputs")
    graph.outputs = [int(t) for t in tensors]
    model.signatureDefs = []  # the signature named the old outputs
    return pack(model)

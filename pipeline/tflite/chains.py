"""Bitpacked activations between binary layers: a flatbuffer rewrite after LCE's converter.

LCE writes a binary convolution's output bitpacked (32 channels per int32, an integer
threshold per channel instead of the float transform) only when the convolution feeds an
``LceQuantize`` directly, and turns ``MAX_POOL_2D -> LceQuantize`` into
``LceQuantize -> LceBMaxPool2d``. Our models pool *before* their batch norm (larq's
order: convolution, max-pool, batch norm, sign), so every pooled binary layer converts to

    LceBconv2d (float out) -> MAX_POOL_2D -> MUL -> ADD -> LceQuantize

a float round trip (and a float tensor written and read) per layer. :func:`bitpack_chains`
turns such a chain — any of ``MUL``/``ADD``/``SUB`` by per-channel constants, with at most
one ``MAX_POOL_2D`` among them, ending in ``LceQuantize`` — into

    LceBconv2d (bitpacked out, thresholds) [-> LceBMaxPool2d]

exactly, for every input. Why it is exact, per output channel ``c``:

- The chain maps the convolution's integer accumulator ``a`` (sign disagreements,
  ``0..depth``) through float functions that are each monotone (the convolution's
  ``clamp(2a) * m + b``, ``y * k``, ``y + k``, clamps; float rounding keeps monotonicity)
  to one bit ``G(a) = (v < 0)``. So ``G`` is a step function of ``a``: a threshold. It is
  found by evaluating the very float32 arithmetic the interpreters do at every ``a``
  (``depth + 1`` values per channel), never by solving in real numbers (rounding).
- A bitpacked ``LceBconv2d`` computes ``bit = a > threshold``: rising in ``a``. Where
  ``G`` falls in ``a`` instead, the channel's filter bits are negated: ``a -> depth - a``
  exactly, also at 'same-one' padded borders (the padding +1 is an input value, and
  ``<+1, -w> = -<+1, w>``); the ±1 filter's unused padding bits stay 0.
- Max pooling: ``max_i F(a_i)`` of a falling pre-pool value ``F`` is ``F(min_i a_i)``, so
  the pooled bit is ``G(min_i a_i)``, which equals ``AND_i G(a_i)`` — what
  ``LceBMaxPool2d`` computes (a -1 survives only if all are -1) — when ``G`` rises in
  ``a``; symmetrically for a rising ``F`` and a falling ``G``. A channel where pooling
  would need OR instead (a negative batch-norm scale after the pool) cannot be written
  with LCE's ops: then the chain stays as it was, and the report says why.

Only convolutions whose padding reads +1 ('same-one' or 'valid') qualify: LCE's zero
padding adds a float correction per border pixel, not a function of ``a``. The quantizer
is LCE's x86 one (``x < 0``: -0.0 packs as +1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.tflite.reader import _builtin_names, schema
from pipeline.tflite.rewrite import _name, _opcode_index, add_tensor, load, pack

AFFINE = ("MUL", "ADD", "SUB")
# TFLite's fused activations that are clamps (monotone): type -> (low, high).
CLAMPS = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
INT32_MAX = 2**31 - 1


@dataclass
class ChainReport:
    conv: str  # the LceBconv2d's output tensor (names the layer)
    ops: list[str]  # the ops between it and its LceQuantize
    rewritten: bool
    reason: str = ""  # why not, when not
    flipped: int = 0  # channels whose filter was negated

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _Skip(Exception):
    """This chain cannot be rewritten exactly (the message says why)."""


def bitpack_chains(flatbuffer: bytes) -> tuple[bytes, list[ChainReport]]:
    """Rewrite every float round trip between binary layers (see module doc)."""
    model = load(flatbuffer)
    graph = model.subgraphs[0]
    chains = [c for i in range(len(graph.operators)) if (c := _chain(model, graph, i))]
    reports, removed, added = [], set(), {}
    for conv_index, ops in chains:
        out = graph.operators[conv_index].outputs[0]
        rep = ChainReport(_name(graph.tensors[out].name), [_kind(model, graph.operators[j])
                                                           for j in ops[:-1]], False)  # fmt: skip
        try:
            rep.flipped, replaced = _rewrite(model, graph, conv_index, ops)
        except _Skip as why:
            rep.reason = str(why)
        else:
            rep.rewritten = True
            removed.update(ops)
            added.update(replaced)  # in the replaced op's place: its inputs exist there
        reports.append(rep)
    if not removed:
        return flatbuffer, reports
    graph.operators = [added.get(i, op) for i, op in enumerate(graph.operators)
                       if i not in removed or i in added]  # fmt: skip
    _drop_unused_constants(model, graph)
    return pack(model), reports


def _drop_unused_constants(model: Any, graph: Any) -> None:
    """Empty the buffers only replaced tensors still hold (the multipliers and biases of
    bitpacked convolutions, negated filters' originals): the file must not grow."""
    if len(model.subgraphs) > 1:  # buffers may be shared with another subgraph
        return
    used = {int(i) for op in graph.operators for i in (op.inputs if op.inputs is not None
                                                        else [])}  # fmt: skip
    used |= {int(i) for op in graph.operators for i in op.outputs}
    used |= {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
    keep = {graph.tensors[i].buffer for i in used if i >= 0}
    for i, t in enumerate(graph.tensors):
        if i not in used and t.buffer > 0 and t.buffer not in keep:
            model.buffers[t.buffer].data = None


def _kind(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return _name(code.customCode)
    return _builtin_names().get(max(code.builtinCode, code.deprecatedBuiltinCode), "")


def _consumers(graph: Any, tensor: int) -> list[int]:
    return [i for i, op in enumerate(graph.operators)
            if op.inputs is not None and tensor in list(op.inputs)]


def _constant(model: Any, graph: Any, tensor: int) -> np.ndarray | None:
    """A float32 constant's values, or None (an activation, or another type)."""
    if tensor < 0:
        return None
    t = graph.tensors[tensor]
    data = model.buffers[t.buffer].data if 0 < t.buffer < len(model.buffers) else None
    if data is None or not len(data) or t.type != schema().TensorType.FLOAT32:
        return None
    shape = [int(d) for d in t.shape] if t.shape is not None else []
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32).reshape(shape)


def _chain(model: Any, graph: Any, index: int) -> tuple[int, list[int]] | None:
    """``(conv op, [ops after it up to and including its LceQuantize])`` when op
    ``index`` is a float-output LceBconv2d feeding such a chain, else None. RESHAPEs
    may come last before the LceQuantize (a flatten in front of a dense layer)."""
    op = graph.operators[index]
    if _kind(model, op) != "LceBconv2d":
        return None
    tensor = op.outputs[0]
    if graph.tensors[tensor].type != schema().TensorType.FLOAT32:
        return None
    ops: list[int] = []
    kinds: list[str] = []
    outputs = set(int(i) for i in graph.outputs)
    while True:
        users = _consumers(graph, tensor)
        if tensor in outputs or len(users) != 1:
            return None
        nxt = graph.operators[users[0]]
        kind = _kind(model, nxt)
        if kinds and kinds[-1] == "RESHAPE" and kind not in ("RESHAPE", "LceQuantize"):
            return None
        ops.append(users[0])
        kinds.append(kind)
        if kind == "LceQuantize":
            return index, ops
        if not (kind in (*AFFINE, "RESHAPE") or (kind == "MAX_POOL_2D" and
                                                 kinds.count(kind) == 1)):  # fmt: skip
            return None
        tensor = nxt.outputs[0]


def _rewrite(model: Any, graph: Any, conv_index: int, ops: list[int]) -> tuple[int, dict]:
    """Turn one chain into a bitpacked LceBconv2d (and an LceBMaxPool2d, and an int32
    RESHAPE); returns the number of negated filters and the ops that replace ops of the
    chain, by index (the others are removed). Raises _Skip, changing nothing."""
    from flatbuffers import flexbuffers

    conv = graph.operators[conv_index]
    options = flexbuffers.Loads(bytes(np.asarray(conv.customOptions, np.uint8)))
    if options.get("padding") != 1 and options.get("pad_values") != 1:
        raise _Skip("zero padding (its border correction is not a function of the count)")
    filters = _filters(model, graph, conv)
    depth, used = _depth(graph, conv, options, filters.shape)
    values = _transform(model, graph, conv, options, depth)
    pool, pre_pool, reshape = None, None, None
    for j in ops[:-1]:
        op, kind = graph.operators[j], _kind(model, graph.operators[j])
        if kind == "MAX_POOL_2D":
            pool, pre_pool = j, values.copy()
            if op.builtinOptions.fusedActivationFunction != 0:
                raise _Skip("the max-pool has a fused activation")
        elif kind == "RESHAPE":  # the last one of consecutive reshapes does it all
            reshape = j
        else:
            values = _affine(model, graph, op, values)
    with np.errstate(invalid="ignore"):
        if np.isnan(values).any() or (pre_pool is not None and np.isnan(pre_pool).any()):
            raise _Skip("the float transform gives NaN")
    out_c = int(filters.shape[0])
    if reshape is not None:  # packing rows of whole words is packing the flat values
        last = int(graph.tensors[graph.operators[reshape].outputs[0]].shape[-1])
        if out_c % 32 or last % 32:
            raise _Skip("a reshape to or from rows that are not whole 32-bit words")
    thresholds, flip = _thresholds(values < 0, pre_pool)
    if flip.any():
        filters = _negate(filters, flip, used)
    packed = graph.operators[ops[-1]].outputs[0]  # the LceQuantize's output
    _apply(model, graph, conv, options, filters, flip.any(), thresholds)
    replaced = {}
    tensor = conv.outputs[0]
    if pool is not None:
        pool_op = graph.operators[pool]
        out = packed if reshape is None else _to_bitpacked(graph, pool_op.outputs[0], out_c)
        replaced[pool] = _bmaxpool(model, tensor, out, pool_op)
        tensor = out
    if reshape is not None:
        replaced[reshape] = _int32_reshape(model, graph, graph.operators[reshape], tensor,
                                           packed)  # fmt: skip
    elif pool is None:
        conv.outputs = [packed]
    return int(flip.sum()), replaced


def _to_bitpacked(graph: Any, tensor: int, channels: int) -> int:
    """Retype a float activation [..., channels] as bitpacked int32 [..., words]."""
    t = graph.tensors[tensor]
    words = (channels + 31) // 32
    t.type = schema().TensorType.INT32
    t.shape = [*list(t.shape)[:-1], words]
    if t.shapeSignature is not None and len(t.shapeSignature):
        t.shapeSignature = [*list(t.shapeSignature)[:-1], words]
    t.quantization = None
    return tensor


def _int32_reshape(model: Any, graph: Any, op: Any, src: int, dst: int) -> Any:
    """The RESHAPE on words: channels are whole words (checked), so flattening the
    packed pixels equals packing the flattened values."""
    t = graph.tensors[dst]
    signature = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else None
    shape = [int(d) for d in (signature if signature is not None else t.shape)]  # -1: batch
    op.inputs = [src, add_tensor(model, graph, [len(shape)], "int32",
                                 np.asarray(shape, np.int32).tobytes(), "bitpacked_shape")]
    op.outputs = [dst]
    if op.builtinOptions is not None and getattr(op.builtinOptions, "newShape", None) is not None:
        op.builtinOptions.newShape = shape
    return op


def _filters(model: Any, graph: Any, conv: Any) -> np.ndarray:
    t = graph.tensors[conv.inputs[1]]
    data = model.buffers[t.buffer].data if 0 < t.buffer < len(model.buffers) else None
    if data is None or not len(data) or t.type != schema().TensorType.INT32:
        raise _Skip("the filters are not a constant int32 tensor")
    shape = [int(d) for d in t.shape]
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.uint32).reshape(shape).copy()


def _depth(graph: Any, conv: Any, options: dict, fshape: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """The accumulator's largest value (taps x channels per group) and, per filter word
    (last axis), the mask of the bits that hold channels."""
    in_words = int(graph.tensors[conv.inputs[0]].shape[-1])
    _, fh, fw, wpg = fshape
    if wpg < 1 or in_words % wpg:
        raise _Skip("filter depth does not divide the input depth")
    per_group = int(options["channels_in"]) // (in_words // wpg)
    bits = np.clip(per_group - 32 * np.arange(wpg), 0, 32)
    used = np.array([(1 << int(b)) - 1 for b in bits], np.uint64).astype(np.uint32)
    return fh * fw * per_group, used


def _transform(model: Any, graph: Any, conv: Any, options: dict, depth: int) -> np.ndarray:
    """The float output at every count ``a = 0..depth``, per channel: [out_c, depth+1],
    computed as bitlite's and LCE's x86 kernels do (runtime/src/bconv.cc PlanBConv)."""
    pm, pb = _constant(model, graph, conv.inputs[2]), _constant(model, graph, conv.inputs[3])
    if pm is None or pb is None:
        raise _Skip("the post-activation multiplier or bias is not a float constant")
    pm, pb = pm.astype(np.float64).ravel(), pb.astype(np.float64).ravel()
    lo, hi = {0: (-INT32_MAX - 1, INT32_MAX), 1: (0, INT32_MAX), 2: (-1, 1),
              3: (0, 6)}[int(options.get("fused_activation_function", 0))]  # fmt: skip
    lo, hi = max(lo, -depth), min(hi, depth)
    x = np.clip(2 * np.arange(depth + 1), -hi + depth, -lo + depth).astype(np.float32)
    mul = (-1 * pm / 1.0).astype(np.float32)[:, None]
    bias = ((pb + float(depth) * pm) / 1.0 + 0.0).astype(np.float32)[:, None]
    return x[None, :] * mul + bias  # float32: the product and the sum each rounded


def _affine(model: Any, graph: Any, op: Any, values: np.ndarray) -> np.ndarray:
    """``values`` through one MUL/ADD/SUB by a per-channel constant and its clamp."""
    kind = _kind(model, op)
    consts = [_constant(model, graph, i) for i in op.inputs]
    if len(consts) != 2 or (consts[0] is None) == (consts[1] is None):
        raise _Skip(f"{kind} is not an activation and a constant")
    k = consts[0] if consts[0] is not None else consts[1]
    channels = values.shape[0]
    if k.size not in (1, channels) or (k.ndim and k.shape[-1] != k.size):
        raise _Skip(f"{kind}'s constant is not per channel")
    k = np.broadcast_to(k.astype(np.float32).reshape(-1), (channels,))[:, None]
    if kind == "MUL":
        out = values * k
    elif kind == "ADD":
        out = values + k
    else:
        out = values - k if consts[1] is not None else k - values
    act = op.builtinOptions.fusedActivationFunction if op.builtinOptions is not None else 0
    if act not in CLAMPS:
        raise _Skip(f"{kind} has a fused activation that is not a clamp")
    low, high = CLAMPS[act]
    return np.minimum(np.maximum(out, np.float32(low)), np.float32(high)).astype(np.float32)


def _thresholds(bits: np.ndarray, pre_pool: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the threshold on the (possibly negated) count and whether to negate;
    raises _Skip where no LceBconv2d + LceBMaxPool2d computes the bits."""
    step = np.diff(bits.astype(np.int8), axis=1)
    rises, falls = (step >= 0).all(1), (step <= 0).all(1)
    if not (rises | falls).all():
        raise _Skip("the bit is not monotone in the count")
    flip = ~rises
    if pre_pool is not None:
        change = np.diff(pre_pool, axis=1)
        value_falls, value_rises = (change <= 0).all(1), (change >= 0).all(1)
        constant = rises & falls
        # AND pooling: the bit must rise with the count exactly where the value falls.
        ok = constant | (rises & value_falls) | (falls & value_rises)
        if not ok.all():
            raise _Skip(f"{int((~ok).sum())} channel(s) would pool with OR "
                        "(a negative scale after the max-pool)")  # fmt: skip
    ordered = np.where(flip[:, None], bits[:, ::-1], bits)
    return (np.count_nonzero(~ordered, axis=1) - 1).astype(np.int32), flip


def _negate(filters: np.ndarray, flip: np.ndarray, used: np.ndarray) -> np.ndarray:
    if (filters & ~used).any():
        raise _Skip("the filters have bits set beyond channels_in")
    out = filters.copy()
    out[flip] ^= used
    return out


def _apply(model: Any, graph: Any, conv: Any, options: dict, filters: np.ndarray,
           flipped: bool, thresholds: np.ndarray) -> None:  # fmt: skip
    """Make ``conv`` write bitpacked int32 through ``thresholds``."""
    from flatbuffers import flexbuffers

    if flipped:  # a buffer of its own: another op might share the original
        t = graph.tensors[conv.inputs[1]]
        conv.inputs[1] = add_tensor(model, graph, list(t.shape), "int32", filters.tobytes(),
                                    _name(t.name) + "/negated")  # fmt: skip
    name = _name(graph.tensors[conv.outputs[0]].name)
    thr = add_tensor(model, graph, [len(thresholds)], "int32", thresholds.tobytes(),
                     name + "/thresholds")  # fmt: skip
    conv.inputs = [conv.inputs[0], conv.inputs[1], -1, -1, thr]
    options = {**options, "fused_activation_function": 0}  # folded into the thresholds
    conv.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8).copy()
    _to_bitpacked(graph, conv.outputs[0], int(filters.shape[0]))


def _bmaxpool(model: Any, src: int, dst: int, pool: Any) -> Any:
    from flatbuffers import flexbuffers

    s = schema()
    o = pool.builtinOptions
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, s.BuiltinOperator.CUSTOM, 1, "LceBMaxPool2d")
    op.inputs, op.outputs = [src], [dst]
    options = {"filter_height": int(o.filterHeight), "filter_width": int(o.filterWidth),
               "padding": int(o.padding), "stride_height": int(o.strideH),
               "stride_width": int(o.strideW)}  # fmt: skip
    op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8).copy()
    op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
    return op

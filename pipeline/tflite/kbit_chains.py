"""k-bit layers on bitlite's fused op: a flatbuffer rewrite of the thermometer export.

The portable export (:mod:`pipeline.export.keras_rewrite`) runs a k-bit activation ``q`` in
{0 .. L}, ``L = 2^k - 1``, into a binary-weight convolution as L equal thermometer planes
on the channel axis — on LCE's ops, so LCE's interpreter runs it too:

    x -> PADV2 (value v) -> CONCATENATION (x, x, .. L times) -> ADD (offsets t) -> LceQuantize
      -> LceBconv2d (VALID, channels_in = L * C, the filter repeated L times)

The reduction is L times as long as the binary weights need. :func:`fuse_kbit` rewrites
each such site for bitlite's runtime (``runtime/src/kbit.h``): the planes become k
binary-weighted bit planes on the batch axis and the convolution ``BitliteKbitBconv2d``,
which counts them with the binary filter once each and combines the counts to
``P = sum_i 2^i a_i`` — exactly the thermometer convolution's count (both are
``const - q . w``). So every function of that count the graph computes is kept exactly:

- a float output: LCE's transform of P over the thermometer depth, in the op;
- a chain to the next k-bit site (``MAX_POOL_2D`` at most once, MUL/ADD/SUB by
  per-channel constants, that site's PADV2 ... LceQuantize): its level as a step function
  of P, found by evaluating the very float32 ops at every count (as
  :mod:`pipeline.tflite.chains` does for binary layers) and stored as thresholds; the
  pool runs on P (by max where the pooled value rises with P, else by min), so the next
  layer's planes come out of the op with no float tensor in between;
- elsewhere the planes are made from float by ``BitliteKbitQuantize`` (the same adds and
  sign test as ADD + LceQuantize).

A padded site needs the pad value to be level 0 (all planes -1), which the op's SAME
padding assumes. Sites that do not fit stay as they are, and the report says why. Files
with these ops run only on bitlite's runtime (``TFLiteModel.bitlite_ops``);
``python -m pipeline.export --kbit-fused`` writes them
(:func:`pipeline.export.exporter.store`), its report listing each site
(:class:`KbitReport`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.tflite.chains import (
    AFFINE,
    _affine,
    _constant,
    _consumers,
    _depth,
    _drop_unused_constants,
    _filters,
    _kind,
    _transform,
)
from pipeline.tflite.chains import _Skip as ChainSkip
from pipeline.tflite.reader import KBIT_CONV_OP as OP
from pipeline.tflite.reader import KBIT_QUANTIZE_OP as QUANTIZE
from pipeline.tflite.rewrite import _name, _opcode_index, add_tensor, load, pack

POOL_MIN, FALLS = 1, 2  # per-channel flags (runtime/src/kbit.h)


@dataclass
class KbitReport:
    conv: str  # the thermometer LceBconv2d's output tensor
    quantized: str = ""  # its input's LceQuantize output tensor (names the Keras layer)
    planes: int = 0  # activation bit planes in
    source: str = ""  # "quantize" (from float) or the producing layer's name
    output: str = ""  # "float" or "planes" (the next k-bit layer's, written by this op)
    out_planes: int = 0  # with output "planes": how many
    pool: bool = False  # a MAX_POOL_2D between it and the next layer runs inside the op
    rewritten: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _Skip(Exception):
    """This site cannot be rewritten exactly (the message says why)."""


@dataclass
class _Site:
    """One thermometer input: x0 [-> PADV2] -> CONCATENATION -> ADD -> LceQuantize -> conv."""

    conv: int  # the consuming LceBconv2d's op index
    ops: list[int]  # PADV2 (if any), CONCATENATION, ADD, LceQuantize
    x0: int  # the float tensor quantized
    offsets: np.ndarray  # [L, C] float32
    planes: int
    padding: int  # 0 SAME, 1 VALID
    filters: np.ndarray  # [O, fh, fw, words(C)] uint32
    options: dict


def fuse_kbit(flatbuffer: bytes) -> tuple[bytes, list[KbitReport]]:
    """Rewrite every thermometer site (module doc); (flatbuffer, one report per site)."""
    from flatbuffers import flexbuffers

    model = load(flatbuffer)
    graph = model.subgraphs[0]
    sites: dict[int, _Site] = {}
    reports: dict[int, KbitReport] = {}
    for i, op in enumerate(graph.operators):
        if _kind(model, op) != "LceQuantize":
            continue
        users = _consumers(graph, op.outputs[0])
        if len(users) != 1 or _kind(model, graph.operators[users[0]]) != "LceBconv2d":
            continue
        conv = users[0]
        rep = KbitReport(_name(graph.tensors[graph.operators[conv].outputs[0]].name),
                         _name(graph.tensors[op.outputs[0]].name))  # fmt: skip
        try:
            sites[conv] = _site(model, graph, i, conv)
            rep.planes = sites[conv].planes
        except _Skip as why:
            rep.reason = str(why)
        reports[conv] = rep
    if not sites:
        return flatbuffer, list(reports.values())
    # Which site's planes come straight from the layer before it (a fused chain).
    fed_by: dict[int, tuple[int, list[int]]] = {}
    for conv, site in sites.items():
        chain = _chain_back(model, graph, site.x0)
        if chain is not None and chain[0] in sites:
            fed_by[conv] = chain
    replaced: dict[int, Any] = {}
    removed: set[int] = set()
    planes_of: dict[int, int] = {}  # conv -> tensor of its input planes
    for conv, site in sites.items():
        rep = reports[conv]
        if conv in fed_by:
            prev, chain = fed_by[conv]
            try:
                thresholds, flags, pool = _levels(model, graph, prev, chain, site)
            except _Skip as why:
                rep.reason = f"from float: {why}"
            else:
                planes_of[conv] = _planes_tensor(model, graph, sites[prev], site, pool,
                                                 thresholds, flags, replaced)  # fmt: skip
                reports[prev].out_planes, reports[prev].pool = site.planes, pool is not None
                removed.update(chain)
                removed.update(site.ops)
                rep.source = _name(graph.tensors[graph.operators[prev].outputs[0]].name)
        if conv not in planes_of:  # from float: BitliteKbitQuantize in the LceQuantize's place
            q = _quantize_op(model, graph, site)
            replaced[site.ops[-1]] = q
            removed.update(site.ops)
            planes_of[conv] = q.outputs[0]
            rep.source = "quantize"
    for conv, site in sites.items():
        old = graph.operators[conv]
        new = replaced.get(conv) or _kbit_op(model, graph, site, old.outputs[0], 0)
        new.inputs[0] = planes_of[conv]
        if new.outputs[0] == old.outputs[0]:  # float output: the convolution's own transform
            new.inputs[2], new.inputs[3] = old.inputs[2], old.inputs[3]
            reports[conv].output = "float"
        else:
            reports[conv].output = "planes"
        new.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(_options(new))), np.uint8).copy()
        replaced[conv] = new
        reports[conv].rewritten = True
    graph.operators = [replaced.get(i, op) for i, op in enumerate(graph.operators)
                       if i not in removed or i in replaced]  # fmt: skip
    _drop_unused_constants(model, graph)
    return pack(model), list(reports.values())


def _producer(graph: Any, tensor: int) -> int | None:
    return next((i for i, op in enumerate(graph.operators) if tensor in list(op.outputs)), None)


def _single_use(graph: Any, tensor: int) -> bool:
    return len(_consumers(graph, tensor)) == 1 and tensor not in list(graph.outputs)


def _site(model: Any, graph: Any, quantize: int, conv: int) -> _Site:
    from flatbuffers import flexbuffers

    add = _producer(graph, graph.operators[quantize].inputs[0])
    if add is None or _kind(model, graph.operators[add]) != "ADD":
        raise _Skip("the LceQuantize is not fed by an ADD of offsets")
    add_op = graph.operators[add]
    consts = [_constant(model, graph, i) for i in add_op.inputs]
    if consts[1] is None or consts[0] is not None or _act(add_op):
        raise _Skip("the ADD is not activation + constant offsets")
    cat = _producer(graph, add_op.inputs[0])
    if cat is None or _kind(model, graph.operators[cat]) != "CONCATENATION":
        raise _Skip("no thermometer CONCATENATION")
    cat_op = graph.operators[cat]
    x = list(cat_op.inputs)
    rank = len(graph.tensors[x[0]].shape)
    if len(set(x)) != 1 or cat_op.builtinOptions.axis not in (-1, rank - 1) or _act(cat_op):
        raise _Skip("the CONCATENATION is not one tensor repeated on channels")
    levels = len(x)
    planes = int(np.log2(levels + 1))
    if levels + 1 != 1 << planes or not 2 <= planes <= 4:
        raise _Skip(f"{levels} thermometer planes is not 2^k - 1 for k in 2..4")
    channels = int(graph.tensors[x[0]].shape[-1])
    if consts[1].size != levels * channels:
        raise _Skip("the offsets are not one per plane and channel")
    offsets = consts[1].reshape(levels, channels).astype(np.float32)
    ops, x0, pads, value = [cat, add, quantize], x[0], None, None
    pad = _producer(graph, x0)
    if pad is not None and _kind(model, graph.operators[pad]) == "PADV2":
        pad_op = graph.operators[pad]
        pads = _int_constant(model, graph, pad_op.inputs[1])
        value = _constant(model, graph, pad_op.inputs[2])
        if pads is None or value is None or value.size != 1 or pads.shape != (4, 2):
            raise _Skip("PADV2 without constant paddings and value")
        ops, x0 = [pad, *ops], pad_op.inputs[0]
    for t in [x0, *(graph.operators[j].outputs[0] for j in ops[:-1])]:
        if not _single_use(graph, t) and t != x[0]:
            raise _Skip("a thermometer tensor has other readers")
    conv_op = graph.operators[conv]
    options = flexbuffers.Loads(bytes(np.asarray(conv_op.customOptions, np.uint8)))
    if (options.get("padding") != 1 or options.get("fused_activation_function", 0) != 0
            or options.get("dilation_height_factor", 1) != 1
            or options.get("dilation_width_factor", 1) != 1
            or int(options["channels_in"]) != levels * channels):  # fmt: skip
        raise _Skip("the convolution is not a VALID, undilated one over the planes")
    if graph.tensors[conv_op.outputs[0]].type != graph.tensors[x0].type:
        raise _Skip("the convolution's output is not float")
    filters = _base_filters(_filters(model, graph, conv_op), levels, channels)
    padding = _padding(graph, x0, filters.shape, options, pads)
    if value is not None and not (np.float32(value.ravel()[0]) + offsets < 0).all():
        raise _Skip("the pad value is not level 0 (all planes -1)")
    return _Site(conv, ops, x0, offsets, planes, padding, filters, options)


def _act(op: Any) -> int:
    o = op.builtinOptions
    return int(getattr(o, "fusedActivationFunction", 0) or 0) if o is not None else 0


def _int_constant(model: Any, graph: Any, tensor: int) -> np.ndarray | None:
    t = graph.tensors[tensor]
    data = model.buffers[t.buffer].data if 0 < t.buffer < len(model.buffers) else None
    if data is None or not len(data):
        return None
    raw = np.asarray(data, np.uint8).tobytes()
    dtype = np.int64 if len(raw) == 8 * int(np.prod(t.shape)) else np.int32
    return np.frombuffer(raw, dtype).reshape([int(d) for d in t.shape])


def _bits(words: np.ndarray) -> np.ndarray:
    """[..., words] uint32 -> [..., 32 * words] 0/1, channel c at bit c % 32 of word c // 32."""
    b = np.unpackbits(words.astype("<u4").view(np.uint8), axis=-1, bitorder="little")
    return b.reshape(*words.shape[:-1], 32 * words.shape[-1])


def _words(bits: np.ndarray) -> np.ndarray:
    pad = -bits.shape[-1] % 32
    b = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), np.uint8)], -1)
    return np.packbits(b, axis=-1, bitorder="little").view("<u4").astype(np.uint32)


def _base_filters(filters: np.ndarray, levels: int, channels: int) -> np.ndarray:
    """The binary filter of one plane, checked to be the same for every plane."""
    bits = _bits(filters)[..., : levels * channels]
    planes = bits.reshape(*bits.shape[:-1], levels, channels)
    if not (planes == planes[..., :1, :]).all():
        raise _Skip("the filter differs between thermometer planes")
    return _words(planes[..., 0, :])


def _padding(graph: Any, x0: int, fshape: tuple, options: dict, pads: np.ndarray | None) -> int:
    """0 (SAME) or 1 (VALID): what the PADV2 before the VALID convolution amounts to."""
    if pads is None or not pads.any():
        return 1
    _, h, w, _ = (int(d) for d in graph.tensors[x0].shape)
    want = []
    for size, k, stride in ((h, fshape[1], options["stride_height"]),
                            (w, fshape[2], options["stride_width"])):  # fmt: skip
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + k - size)
        want.append([total // 2, total - total // 2])
    if pads[0].any() or pads[3].any() or pads[1:3].tolist() != want:
        raise _Skip("the padding is not the convolution's SAME padding")
    return 0


def _chain_back(model: Any, graph: Any, tensor: int) -> tuple[int, list[int]] | None:
    """(LceBconv2d op, [ops from it to ``tensor``]) when ``tensor`` is a float-output
    convolution's value through at most one MAX_POOL_2D and per-channel MUL/ADD/SUB."""
    ops: list[int] = []
    while True:
        j = _producer(graph, tensor)
        if j is None:
            return None
        kind = _kind(model, graph.operators[j])
        if kind == "LceBconv2d":
            ok = all(_single_use(graph, graph.operators[i].outputs[0]) for i in [j, *ops[1:]])
            return (j, ops[::-1]) if ok else None
        pools = [i for i in ops if _kind(model, graph.operators[i]) == "MAX_POOL_2D"]
        if kind not in AFFINE and not (kind == "MAX_POOL_2D" and not pools):
            return None
        ops.append(j)
        tensor = next(i for i in graph.operators[j].inputs
                      if i >= 0 and _constant(model, graph, i) is None)  # fmt: skip


def _levels(model: Any, graph: Any, prev: int, chain: list[int], site: _Site):
    """Thresholds [O, L], flags [O] and the pool op (or None) of ``prev``'s output
    level in ``site``'s planes, from the float ops evaluated at every count."""
    from flatbuffers import flexbuffers

    conv = graph.operators[prev]
    options = flexbuffers.Loads(bytes(np.asarray(conv.customOptions, np.uint8)))
    depth, _ = _depth(graph, conv, options, _filters(model, graph, conv).shape)
    values = _transform(model, graph, conv, options, depth)
    pool, pre_pool = None, None
    for j in chain:
        op = graph.operators[j]
        if _kind(model, op) == "MAX_POOL_2D":
            if _act(op):
                raise _Skip("the max-pool has a fused activation")
            pool, pre_pool = op, values.copy()
        else:
            try:
                values = _affine(model, graph, op, values)
            except ChainSkip as why:
                raise _Skip(str(why)) from None
    with np.errstate(invalid="ignore"):
        if np.isnan(values).any():
            raise _Skip("the float transform gives NaN")
        level = sum((~(values + site.offsets[j][:, None] < 0)).astype(np.int32)
                    for j in range(len(site.offsets)))  # fmt: skip
    thresholds, flags = step_thresholds(level, len(site.offsets))
    if pre_pool is not None:
        change = np.diff(pre_pool, axis=1)
        up, down = (change >= 0).all(1), (change <= 0).all(1)
        if not (up | down).all():
            raise _Skip("the pooled value is not monotone in the count")
        flags |= np.where(up, 0, POOL_MIN).astype(np.int32)
    return thresholds, flags, pool


def step_thresholds(level: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """A level in 0..levels at every count P = 0..depth ([O, depth + 1], monotone per
    channel) as thresholds [O, levels] and flags [O], as the op applies them: a rising
    level is #{j : P > T_j}, a falling one (flag FALLS) #{j : P < T_j}."""
    step = np.diff(level, axis=1)
    rises, falls = (step >= 0).all(1), (step <= 0).all(1)
    if not (rises | falls).all():
        raise _Skip("the level is not monotone in the count")
    depth = level.shape[1] - 1
    j = np.arange(1, levels + 1)
    below = (level[:, None, :] < j[None, :, None]).sum(2)  # [O, L]: counts with level < j
    thresholds = np.where(rises[:, None], below - 1, depth + 1 - below).astype(np.int32)
    return thresholds, np.where(rises, 0, FALLS).astype(np.int32)


def _planes_tensor(model: Any, graph: Any, prev: _Site, site: _Site, pool: Any,
                   thresholds: np.ndarray, flags: np.ndarray, replaced: dict) -> int:  # fmt: skip
    """Make ``prev``'s BitliteKbitBconv2d write ``site``'s planes; returns that tensor."""
    x0 = graph.tensors[site.x0]
    n, h, w, c = (int(d) for d in x0.shape)
    name = _name(graph.tensors[graph.operators[prev.conv].outputs[0]].name)
    out = add_tensor(model, graph, [site.planes * n, h, w, -(-c // 32)], "int32", None,
                     name + "/planes")  # fmt: skip
    op = _kbit_op(model, graph, prev, out, site.planes)
    op.inputs[4] = add_tensor(model, graph, list(thresholds.shape), "int32", thresholds.tobytes(),
                              name + "/level_thresholds")  # fmt: skip
    op.inputs[5] = add_tensor(model, graph, [len(flags)], "int32", flags.tobytes(),
                              name + "/level_flags")  # fmt: skip
    op.pool = pool  # read by _options
    replaced[prev.conv] = op
    return out


def _kbit_op(model: Any, graph: Any, site: _Site, out: int, out_planes: int) -> Any:
    """A BitliteKbitBconv2d for ``site``'s convolution (its binary filter; inputs 0 and
    2..5 set by the caller). Python attributes carry what :func:`_options` reads."""
    from pipeline.tflite.reader import schema

    s = schema()
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, s.BuiltinOperator.CUSTOM, 1, OP)
    name = _name(graph.tensors[graph.operators[site.conv].outputs[0]].name)
    f = add_tensor(model, graph, list(site.filters.shape), "int32", site.filters.tobytes(),
                   name + "/binary_filter")  # fmt: skip
    op.inputs, op.outputs = [-1, f, -1, -1, -1, -1], [out]
    op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
    op.site, op.out_planes, op.pool = site, out_planes, None
    return op


def _options(op: Any) -> dict[str, int]:
    site: _Site = op.site
    o: dict[str, int] = {
        "channels_in": int(site.offsets.shape[1]), "planes": site.planes,
        "out_planes": op.out_planes, "padding": site.padding,
        "stride_height": int(site.options["stride_height"]),
        "stride_width": int(site.options["stride_width"]),
        "pool_height": 0, "pool_width": 0, "pool_stride_height": 1, "pool_stride_width": 1,
        "pool_padding": 1,
    }  # fmt: skip
    if op.pool is not None:
        p = op.pool.builtinOptions
        o.update(pool_height=int(p.filterHeight), pool_width=int(p.filterWidth),
                 pool_stride_height=int(p.strideH), pool_stride_width=int(p.strideW),
                 pool_padding=int(p.padding))  # fmt: skip
    return o


def _quantize_op(model: Any, graph: Any, site: _Site) -> Any:
    from flatbuffers import flexbuffers

    from pipeline.tflite.reader import schema

    s = schema()
    n, h, w, c = (int(d) for d in graph.tensors[site.x0].shape)
    name = _name(graph.tensors[site.x0].name)
    out = add_tensor(model, graph, [site.planes * n, h, w, -(-c // 32)], "int32", None,
                     name + "/planes")  # fmt: skip
    offsets = add_tensor(model, graph, list(site.offsets.shape), "float32",
                         site.offsets.tobytes(), name + "/plane_offsets")  # fmt: skip
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, s.BuiltinOperator.CUSTOM, 1, QUANTIZE)
    op.inputs, op.outputs = [site.x0, offsets], [out]
    op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps({"planes": site.planes})),
                                     np.uint8).copy()  # fmt: skip
    op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
    return op

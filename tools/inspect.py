"""``python -m tools.inspect MODEL.tflite``: what a .tflite file really stores and needs.

Reads the flatbuffer itself (the ``flatbuffers`` package and TFLite's schema; no model
is run): operators by type, each weight tensor's dtype, bytes and the bits per weight
actually stored (a bitpacked ``LceBconv2d`` filter with 8 input channels still spends a
32-bit word per 8 weights: 4 bits each; k-bit codes behind ``BitliteDecodeWeights`` show
as ``packed{k}``, k bits each), multiply-accumulates per inference split into
binary / int8 / float, custom operators and which interpreter can run the file. Each
``LceBconv2d`` is listed with the binary products it computes: a k-bit layer exported as
bit planes (issue 16) runs its k activation planes stacked on the batch axis through one
``LceBconv2d`` whose filters are its weight planes side by side, so ``planes`` is the op's
batch over the model's and ``filters`` counts every weight plane. A layer whose planes are
a thermometer code instead (equal planes side by side on the channel axis: one product
with a longer reduction) is recognised by its input, ``concat([a, a, …]) − edges``:
``encoding``. A ``--kbit-fused`` export's k-bit layers run on bitlite's own
``BitliteKbitBconv2d`` instead (encoding ``fused``: the k bit planes on the batch axis,
one binary filter; ``output``: float, or the next layer's planes, a max-pool inside), and
the file names the ops it needs only bitlite's runtime has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli
from pipeline.errors import UsageError
from pipeline.tflite.reader import (
    KBIT_CONV_OP,
    METADATA_NAME,
    Op,
    TFLiteModel,
    bitlite_op_roles,
    custom_options,
    gzip_size,
    op_macs,
    read_model,
    weight_totals,
)


def interpreter_note(model: TFLiteModel) -> str:
    custom = model.custom_ops()
    others = sorted(
        {op.type for op in model.ops if not op.type.isupper() and op.type not in custom}
    )
    if model.bitlite_ops():
        lce = model.lce_ops()
        return (
            f"needs bitlite_runtime: custom ops {bitlite_op_roles(model.bitlite_ops())} "
            "exist only in bitlite's runtime (bitlite_runtime.Interpreter); "
            "LCE's interpreter and stock TFLite cannot load this file"
            + (f" (bitlite_runtime also runs its LCE ops {', '.join(lce)})" if lce else "")
        )
    if custom:
        return (
            f"needs Larq Compute Engine's interpreter: custom ops {', '.join(custom)} are "
            "not in stock TFLite or tflite-runtime (use larq_compute_engine's Interpreter "
            "or a TFLite runtime built with LCE's kernels)"
        )
    if others:
        return f"needs an interpreter that registers the custom ops {', '.join(others)}"
    return "any TFLite interpreter (builtin ops only: tflite-runtime, TensorFlow Lite)"


def encoding(model: TFLiteModel, op: Op, planes: int) -> str:
    """How a product's input planes are laid out: ``binary`` (bit planes on the batch
    axis), ``thermometer`` (equal planes side by side on the channel axis: its input bits
    are the signs of ``concat([a, a, …]) − edges``) or ``–`` (a plain binary layer)."""
    if planes > 1:
        return "binary"
    tensor = op.inputs[0]
    for _ in range(4):  # LceQuantize ← SUB ← CONCATENATION of one tensor, repeated
        producer = model.producer(tensor)
        if producer is None or not producer.inputs:
            return "–"
        if producer.type == "CONCATENATION":
            repeated = len(producer.inputs) > 1 and len(set(producer.inputs)) == 1
            return "thermometer" if repeated else "–"
        tensor = producer.inputs[0]
    return "–"


def binary_products(model: TFLiteModel) -> list[dict[str, Any]]:
    """Every ``LceBconv2d``: its layer, activation planes (its batch over the model's),
    filters (weight planes × channels, + an all-ones filter), plane encoding and binary
    MACs; every ``BitliteKbitBconv2d`` (:func:`fused_product`) too."""
    batch = max(1, int(model.tensors[model.inputs[0]].shape[0])) if model.inputs else 1
    rows = []
    for op in model.ops:
        if op.type == KBIT_CONV_OP:
            rows.append(fused_product(model, op))
        if op.type != "LceBconv2d":
            continue
        out = model.tensors[op.outputs[0]]
        filters, kh, kw, _ = model.tensors[op.inputs[1]].shape
        positions = int(np.prod(out.shape[:-1])) if out.shape else 0
        cin = int(custom_options(op).get("channels_in", 0))
        planes = max(1, int(out.shape[0]) // batch) if out.shape else 1
        rows.append(
            {
                "layer": out.name.split(";")[0],
                "planes": planes,
                "encoding": encoding(model, op, planes),
                "filters": int(filters),
                "kernel": [int(kh), int(kw), cin],
                "macs": positions * int(filters) * int(kh) * int(kw) * cin,
            }
        )
    return rows


def fused_product(model: TFLiteModel, op: Op) -> dict[str, Any]:
    """A ``BitliteKbitBconv2d`` row: its options' planes in and out, and pool."""
    options = custom_options(op)
    filters, kh, kw, _ = model.tensors[op.inputs[1]].shape
    out_planes, pool = int(options.get("out_planes", 0)), int(options.get("pool_height", 0))
    output = f"{out_planes} planes" if out_planes else "float"
    return {
        "layer": model.tensors[op.outputs[0]].name.split(";")[0],
        "planes": int(options.get("planes", 0)),
        "encoding": "fused",
        "filters": int(filters),
        "kernel": [int(kh), int(kw), int(options.get("channels_in", 0))],
        "macs": op_macs(model, op)[1],
        "output": output + (", max-pool inside" if pool else ""),
    }


def inspect(data: bytes) -> dict[str, Any]:
    model = read_model(data)
    macs = model.macs()
    total = sum(macs.values())
    weights = model.weights()
    stored, _, bits = weight_totals(weights)
    meta = model.metadata.get(METADATA_NAME)
    return {
        "size_bytes": len(data),
        "gzip_bytes": gzip_size(data),
        "ops": dict(sorted(model.op_counts().items())),
        "custom_ops": model.custom_ops(),
        "interpreter": interpreter_note(model),
        "weights": [
            {
                "op": w.op,
                "layer": w.output,
                "tensor": w.name,
                "dtype": w.dtype,
                "shape": list(w.shape),
                "bytes": w.bytes,
                "count": w.count,
                "bits_per_weight": round(w.bits_per_weight, 4),
            }
            for w in weights
        ],
        "weight_bytes": stored,
        "bits_per_weight": bits,
        "binary_products": binary_products(model),
        "macs": macs,
        "mac_fractions": {k: v / total if total else 0.0 for k, v in macs.items()},
        "metadata": sorted(model.metadata),
        "app_metadata": json.loads(meta) if meta else None,
    }


def render(path: Path, info: dict[str, Any]) -> str:
    lines = [
        f"{path}: {info['size_bytes'] / 1024:.1f} KiB (gzip {info['gzip_bytes'] / 1024:.1f} KiB)",
        f"runs on: {info['interpreter']}",
        "ops: " + ", ".join(f"{k}×{v}" for k, v in info["ops"].items()),
        "",
        f"{'op':<18} {'layer':<34} {'dtype':<8} {'bytes':>10} {'weights':>10} {'bits/w':>7}",
    ]
    for w in info["weights"]:
        lines.append(
            f"{w['op']:<18} {w['layer'][-34:]:<34} {w['dtype']:<8} {w['bytes']:>10,} "
            f"{w['count']:>10,} {w['bits_per_weight']:>7.2f}"
        )
    lines.append(
        f"{'all weights':<18} {'':<34} {'':<8} {info['weight_bytes']:>10,} "
        f"{sum(w['count'] for w in info['weights']):>10,} {info['bits_per_weight']:>7.2f}"
    )
    products = info["binary_products"]
    if products:
        lines += [
            "",
            f"{'binary products (LceBconv2d, BitliteKbitBconv2d)':<52} {'planes':>6} "
            f"{'encoding':>11} {'filters':>7} {'MACs':>12}  output",
        ]
        lines += [
            f"{p['layer'][-52:]:<52} {p['planes']:>6} {p['encoding']:>11} {p['filters']:>7} "
            f"{p['macs']:>12,}  {p.get('output', '')}".rstrip()
            for p in products
        ]
    macs = info["macs"]
    lines += [
        "",
        "MACs per inference: "
        + ", ".join(f"{k} {v:,} ({info['mac_fractions'][k]:.1%})" for k, v in macs.items()),
    ]
    app = info["app_metadata"]
    if app:
        lines.append(
            f"app metadata: input {app.get('input_shape')} {app.get('input_dtype')}, "
            f"normalization {app.get('normalization')}, {len(app.get('labels', []))} labels"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m tools.inspect", __doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="a .tflite file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    try:
        data = args.model.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {args.model}: {err.strerror}") from None
    info = inspect(data)
    print(json.dumps(info, indent=2) if args.json else render(args.model, info))
    return 0


if __name__ == "__main__":
    cli.run(main)

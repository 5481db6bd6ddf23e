"""Speed of k-bit exports for ``python -m benchmarks.kbit`` (issue 16): host latency of
several .tflite files in ONE interleaved run, and guest instructions under qemu-aarch64.

Engines: a file with LCE ops runs on bitlite's runtime (its best kernel on this CPU, the
float ops on tflite-runtime's builtin kernels, as in ``benchmarks.kernels``); a float or
int8 file on LiteRT with its default XNNPACK delegate. 1 thread. Each round invokes every
subject once, so they share the machine's load; compare ratios within one table.

VGG-8 models are built here (``models.registry``) with random weights and random batch
norm statistics (speed does not depend on the weight values; random statistics spread a
k-bit activation over its levels as training does) and exported the way
``pipeline.export`` does: :func:`pipeline.export.convert.convert` (LCE, the rewrite) and
:func:`pipeline.export.exporter.store` (int8 storage of the remaining weights; for the
fused row, ``--kbit-fused``'s thermometer encoding and bitlite's fused k-bit ops).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

VGG_SHAPE = (32, 32, 3)
FUSED = "W1A2 (dorefa), first layer int8, fused k-bit op (bitlite's runtime only)"


@dataclass
class Variant:
    """One VGG-8 export: how its model is built and, for k-bit models, which encoding."""

    method: str
    options: dict
    encoding: str | None = None  # None: the cost model's choice per layer (or fused's)
    # True: a first layer with few-level weights runs on the image's 8 bit planes (opt-in,
    # prepare_for_lce(image_planes=True)); False: it stays int8
    image_planes: bool = False
    # True: exported as ``python -m pipeline.export --kbit-fused`` does (bitlite's fused
    # k-bit op; the file then runs on bitlite's runtime only)
    fused: bool = False


VGG_VARIANTS: dict[str, Variant] = {
    "W1A1 (bnn), first layer on pixel bit planes": Variant("bnn", {}, image_planes=True),
    "W1A1 (bnn), first layer int8": Variant("bnn", {}),
    "W1A2 (dorefa)": Variant("dorefa", {"wbits": 1, "abits": 2}),
    # like with like: the first layer's weights quantized too, int8 in the file as W1A1's
    "W1A2 (dorefa), first layer int8": Variant(
        "dorefa", {"wbits": 1, "abits": 2, "quantize_first": True}
    ),
    "W1A2 (dorefa), bit planes forced": Variant("dorefa", {"wbits": 1, "abits": 2}, "binary"),
    "W1A2 (dorefa), thermometer forced": Variant("dorefa", {"wbits": 1, "abits": 2}, "thermometer"),
    FUSED: Variant("dorefa", {"wbits": 1, "abits": 2, "quantize_first": True}, fused=True),
    "W2A2 (dorefa)": Variant("dorefa", {"wbits": 2, "abits": 2}),
    "W2A1 (twn, ternary-A1)": Variant("twn", {"abits": 1}),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def randomize_batch_norm(model, rng: np.random.Generator) -> None:
    """Random statistics (and γ, β where the layer has them: BNN's has no γ)."""
    import tensorflow as tf

    draw = {"gamma": lambda n: rng.uniform(0.5, 1.5, n), "beta": lambda n: rng.normal(0.3, 0.3, n),
            "moving_mean": lambda n: rng.normal(0, 0.3, n),
            "moving_variance": lambda n: rng.uniform(0.5, 2.0, n)}  # fmt: skip
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for w in layer.weights:
                w.assign(
                    draw[w.name.split("/")[-1].split(":")[0]](tuple(w.shape)).astype("float32")
                )


def random_pixels(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    from pipeline.data import normalize

    rng = np.random.default_rng(seed)
    return normalize(rng.integers(0, 256, (n, *shape), dtype=np.uint8))


def _exported(model, encoding: str | None, baselines=(), representative=None,
              image_planes=False, fused=False):  # fmt: skip
    """(the export's flatbuffer, its layer plans, baseline flatbuffers) as the exporter
    writes them (:func:`pipeline.export.exporter.store`; ``fused``: ``--kbit-fused``)."""
    from pipeline.export.convert import convert
    from pipeline.export.exporter import FUSED_ENCODING, store
    from pipeline.export.keras_rewrite import prepare_for_lce, run_pixel_scale

    scale = run_pixel_scale()
    encoding = FUSED_ENCODING if fused else encoding
    plans = []
    if image_planes:  # rewritten here (the exporter leaves the first layer int8)
        model, plans = prepare_for_lce(model, scale, encoding, image_planes)
        plans = [p.to_dict() for p in plans]
    done = convert(model, baselines=baselines, representative=representative,
                   pixel_scale=scale, encoding=encoding)  # fmt: skip
    return store(done.flatbuffer, fused=fused).flatbuffer, plans or done.layers, done.baselines


def build_vgg8(out: Path, names: list[str]) -> tuple[dict[str, Path], dict[str, list]]:
    """float, int8 and the chosen k-bit VGG-8 exports in ``out``; (paths, layer plans)."""
    import tensorflow as tf

    from models.registry import build_model
    from pipeline.methods import make_method

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tf.keras.utils.set_random_seed(0)
    paths, plans = {}, {}
    _log("VGG-8 float + int8")
    float_model = build_model("vgg8", make_method("float"), VGG_SHAPE, 10)
    randomize_batch_norm(float_model, rng)
    calibration = random_pixels(64, VGG_SHAPE)
    flat, _, base = _exported(float_model, None, ("float", "int8"), calibration)
    for kind in ("float", "int8"):
        paths[kind] = out / f"vgg8_{kind}.tflite"
        paths[kind].write_bytes(base[kind])
    for name in names:
        v = VGG_VARIANTS[name]
        _log(f"VGG-8 {name}")
        model = build_model("vgg8", make_method(v.method, **v.options), VGG_SHAPE, 10)
        randomize_batch_norm(model, rng)
        flat, plans[name], _ = _exported(model, v.encoding, image_planes=v.image_planes,
                                         fused=v.fused)  # fmt: skip
        paths[name] = out / f"vgg8_{len(paths)}_{v.method}.tflite"
        paths[name].write_bytes(flat)
    return paths, plans


def _subject(path: Path, x: np.ndarray, engine: str = "litert"):
    from benchmarks.kernels import available_kernels, bitlite_subject, host_subject
    from pipeline.tflite.reader import read_model

    model = path.read_bytes()
    if read_model(model).custom_ops():  # LCE's or bitlite's ops: bitlite's runtime
        return bitlite_subject(model, available_kernels()[0][0], 1, x)
    return host_subject(model, path.stem, 1, x, engine)


def host_latency(paths: dict[str, Path], runs: int, cpu_time: bool = False,
                 engines: dict[str, str] | None = None) -> dict[str, tuple[float, str]]:
    """label -> (median ms at 1 thread, engine), all subjects interleaved round by round;
    ``cpu_time``: this process's CPU time per invoke instead of wall time; ``engines``:
    label -> host interpreter (benchmarks.kernels.ENGINES) for a file without custom
    ops (default LiteRT)."""
    import time

    from benchmarks.kernels import run
    from pipeline.tflite.reader import read_model

    subjects = {}
    for label, path in paths.items():
        model = read_model(path.read_bytes())
        shape = tuple(int(d) for d in model.tensors[model.inputs[0]].shape[1:])
        engine = (engines or {}).get(label, "litert")
        subjects[label] = _subject(path, random_pixels(1, shape), engine)
    _log(f"host: {len(subjects)} subjects × {runs} interleaved rounds")
    run(list(subjects.values()), runs, time.process_time if cpu_time else time.perf_counter)
    return {k: (s.median_ms(), s.label) for k, s in subjects.items()}


def instructions(paths: dict[str, Path], log: Callable[[str], None] = _log) -> dict[str, tuple]:
    """label -> (guest instructions per inference on qemu-aarch64, parity with the host)."""
    from pipeline.bench.targets import make_target
    from pipeline.bench.targets.base import Settings
    from pipeline.bench.targets.measure import measure

    qemu = make_target("qemu-aarch64", progress=log)
    counts = {}
    for label, path in paths.items():
        log(f"qemu-aarch64: {label}")
        m = measure(path, qemu, Settings(runs=2, warmup=1))
        ok = m.parity.get("ok") if m.parity else None
        counts[label] = (m.instructions_per_invoke, {True: "ok", False: "FAIL"}.get(ok, "–"))
    return counts


# -- the per-layer encoding choice, checked on single layers --------------------------------
@dataclass(frozen=True)
class LayerCase:
    """One k-bit convolution (``kernel`` 1 with a 1×1 input: a dense layer)."""

    name: str
    shape: tuple[int, int, int]  # input H, W, C
    filters: int
    kernel: int
    bits: int  # DoReFa activation bits


LAYER_CASES = (
    LayerCase("LeNet-5 conv2", (12, 12, 32), 64, 5, 2),
    LayerCase("LeNet-5 dense1", (1, 1, 1024), 512, 1, 2),
    LayerCase("VGG-8 conv2", (32, 32, 128), 128, 3, 2),
    LayerCase("VGG-8 conv6", (8, 8, 512), 512, 3, 2),
    LayerCase("8 channels", (16, 16, 8), 32, 3, 2),
    LayerCase("16 channels, A3", (16, 16, 16), 32, 3, 3),
    LayerCase("64 channels, A4", (16, 16, 64), 64, 3, 4),
)


def _layer_model(case: LayerCase):
    import larq as lq
    import tensorflow as tf

    x = tf.keras.Input(case.shape)
    conv = lq.layers.QuantConv2D(
        case.filters, case.kernel, padding="same", use_bias=False,
        input_quantizer=lq.quantizers.DoReFa(k_bit=case.bits, mode="activations"),
        kernel_quantizer="ste_sign", name="k",
    )  # fmt: skip
    return tf.keras.Model(x, conv(x), name=case.name.replace(" ", "_").replace(",", ""))


def layer_exports(out: Path) -> tuple[dict[tuple[str, str], Path], dict[str, dict]]:
    """Each case's layer exported with each encoding forced (one LCE child for all);
    returns the paths by (case, encoding) and each case's plan (the model's costs)."""
    from pipeline.export.convert import convert_many
    from pipeline.export.exporter import store
    from pipeline.export.keras_rewrite import prepare_for_lce
    from pipeline.export.plane_cost import ENCODINGS

    out.mkdir(parents=True, exist_ok=True)
    models, keys, plans = [], [], {}
    for case in LAYER_CASES:
        model = _layer_model(case)
        for encoding in ENCODINGS:
            rewritten, (plan,) = prepare_for_lce(model, None, encoding)
            models.append(rewritten)
            keys.append((case.name, encoding))
        # the cost model's pick for speed (one layer alone is always over the size budget)
        plans[case.name] = {**plan.to_dict(), "chosen": min(plan.costs, key=plan.costs.get)}
    _log(f"converting {len(models)} single-layer models")
    paths = {}
    for key, done in zip(keys, convert_many(models), strict=True):
        paths[key] = out / f"{key[0].replace(' ', '_').replace(',', '')}_{key[1]}.tflite"
        paths[key].write_bytes(store(done.flatbuffer).flatbuffer)
    return paths, plans


def encoding_section(runs: int, aarch64: bool) -> str:
    """The cost model's pick per layer against measured host time (interleaved) and
    aarch64 instructions of the same layer with each encoding forced."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bitlite-kbit-layers-") as tmp:
        paths, plans = layer_exports(Path(tmp))
        labels = {f"{c} / {e}": p for (c, e), p in paths.items()}
        host = host_latency(labels, runs)
        qemu = instructions(labels) if aarch64 else {}
    lines = ["### Plane encoding per layer: the cost model against measurement", "",
             "One DoReFa k-bit × binary-weight 3×3 (5×5, 1×1) convolution per row, SAME, "
             "batch 1, exported with each encoding forced; host median ms at 1 thread "
             "(bitlite_runtime, every file in one interleaved run) and aarch64 guest "
             "instructions per inference. Estimated costs: aarch64 instructions by "
             "pipeline.export.plane_cost, whose weights are fitted to this table's "
             "instruction counts.", "",
             "| layer (input, filters, kernel, bits) | est. binary | est. thermometer | "
             "model picks | host ms binary / thermo | faster on host | aarch64 instr. binary "
             "/ thermo | fewer on aarch64 |", "|---|---:|---:|---|---|---|---|---|"]  # fmt: skip
    agree = {"host": 0, "aarch64": 0}
    for case in LAYER_CASES:
        plan = plans[case.name]
        b, t = (f"{case.name} / {e}" for e in ("binary", "thermometer"))
        host_pick = "binary" if host[b][0] <= host[t][0] else "thermometer"
        agree["host"] += host_pick == plan["chosen"]
        cells = [f"{case.name} ({'×'.join(map(str, case.shape))}, {case.filters}, "
                 f"{case.kernel}×{case.kernel}, A{case.bits})",
                 f"{plan['costs']['binary']:,.0f}", f"{plan['costs']['thermometer']:,.0f}",
                 plan["chosen"], f"{host[b][0]:.3f} / {host[t][0]:.3f}", host_pick]  # fmt: skip
        if qemu:
            q_pick = "binary" if qemu[b][0] <= qemu[t][0] else "thermometer"
            agree["aarch64"] += q_pick == plan["chosen"]
            cells += [f"{qemu[b][0]:,} / {qemu[t][0]:,}", q_pick]
        else:
            cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    n = len(LAYER_CASES)
    summary = f"The cost model picks the faster encoding on the host for {agree['host']} of {n}"
    if qemu:
        summary += f", the one with fewer aarch64 instructions for {agree['aarch64']} of {n}"
    return "\n".join(lines + ["", summary + ".", ""])

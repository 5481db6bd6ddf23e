"""Tiny Larq models converted by LCE for the runtime tests, and LCE's outputs on them.

Converting with LCE is the slow part, so each model packs many configurations as
parallel branches (one output each), and converted models are cached on disk.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

CINS = (1, 31, 32, 33, 64, 200)
OUT_CHANNELS = (1, 31, 32, 33, 40)  # rotated over branches: packed-output tails
PADDINGS = (("valid", 0.0), ("same", 0.0), ("same", 1.0))
STRIDE_DILATION = ((1, 1), (2, 1), (1, 2))  # Keras refuses stride > 1 with dilation > 1
SIZE = 9  # odd: SAME with stride 2 pads asymmetrically


def quant_conv(filters, padding, pad_values, stride, dilation, groups=1, kernel=3):
    import larq as lq

    return lq.layers.QuantConv2D(
        filters, kernel, strides=stride, dilation_rate=dilation, padding=padding,
        pad_values=pad_values, groups=groups, input_quantizer="ste_sign",
        kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)


def batch_norm():
    import tensorflow as tf

    return tf.keras.layers.BatchNormalization()


def _randomize(model, seed: int) -> None:
    """Random weights; BN scales of both signs so post-multipliers flip thresholds."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            shape = layer.get_weights()[-1].shape
            weights = []  # gamma and beta only where the layer has them (scale, center)
            if layer.scale:
                sign = rng.choice([-1.0, 1.0], shape)
                weights.append(sign * rng.uniform(0.3, 2.0, shape))
            if layer.center:
                weights.append(rng.normal(0, 1, shape))
            weights += [rng.normal(0, 2, shape), rng.uniform(0.5, 3.0, shape)]
            layer.set_weights([w.astype("float32") for w in weights])
        elif layer.get_weights():
            layer.set_weights([rng.normal(0, 1, w.shape).astype("float32")
                               for w in layer.get_weights()])


class _Branches:
    """Collects a model's outputs with their names and expected channel counts.

    Each output passes through a layer named o000, o001, ...: the converted model's
    signature names its outputs after them, which maps outputs back to branches.
    """

    def __init__(self):
        self.outputs, self.names, self.channels = [], [], []

    def add(self, y, name: str, channels: int, layer=None):
        import tensorflow as tf

        layer = layer or (lambda n: tf.keras.layers.Activation("linear", name=n))
        self.outputs.append(layer(f"o{len(self.outputs):03d}")(y))
        self.names.append(name)
        self.channels.append(channels)


def _sign_layer(name):
    import larq as lq
    import tensorflow as tf

    return tf.keras.layers.Activation(lq.quantizers.SteSign(), name=name)


def build_main_model():
    """Covers every Cin x padding/pad_values with float output, every Cin x {VALID,
    SAME-one} with bitpacked output (bconv -> bconv), strides and dilations rotated over
    them (each padding meets each stride/dilation twice), out channels rotated over
    {1, 31, 32, 33, 40}; plus fused ReLU, binary max pooling and a sign output."""
    import tensorflow as tf

    inputs = [tf.keras.Input((SIZE, SIZE, c)) for c in CINS]
    b = _Branches()
    for i, (x, cin) in enumerate(zip(inputs, CINS, strict=True)):
        for j, (padding, pad_values) in enumerate(PADDINGS):
            stride, dilation = STRIDE_DILATION[(i + j) % 3]
            out_c = OUT_CHANNELS[len(b.names) % len(OUT_CHANNELS)]
            y = batch_norm()(quant_conv(out_c, padding, pad_values, stride, dilation)(x))
            b.add(y, f"float-cin{cin}-{padding}{int(pad_values)}-s{stride}d{dilation}", out_c)
        for j, (padding, pad_values) in enumerate((("valid", 0.0), ("same", 1.0))):
            stride, dilation = STRIDE_DILATION[(i + j + 1) % 3]
            out_c = OUT_CHANNELS[len(b.names) % len(OUT_CHANNELS)]
            y = batch_norm()(quant_conv(out_c, padding, pad_values, stride, dilation)(x))
            y = batch_norm()(quant_conv(8, "same", 1.0, 1, 1)(y))
            b.add(y, f"packed-cin{cin}-{padding}{int(pad_values)}-s{stride}d{dilation}"
                     f"-o{out_c}", 8)
    for cin, padding in ((33, "valid"), (64, "same")):
        x = inputs[CINS.index(cin)]
        b.add(quant_conv(33, padding, 1.0, 1, 1)(x), f"relu-cin{cin}-{padding}", 33,
              layer=lambda n: tf.keras.layers.ReLU(name=n))
    for cin, pool_padding in ((31, "valid"), (200, "same")):
        y = batch_norm()(quant_conv(40, "same", 1.0, 1, 1)(inputs[CINS.index(cin)]))
        y = tf.keras.layers.MaxPool2D(3, 2, padding=pool_padding)(y)
        y = batch_norm()(quant_conv(8, "valid", 0.0, 1, 1)(y))
        b.add(y, f"maxpool-{pool_padding}-cin{cin}", 8)
    y = batch_norm()(quant_conv(35, "valid", 0.0, 1, 1)(inputs[CINS.index(33)]))
    b.add(y, "sign-cin33", 35, layer=_sign_layer)
    return tf.keras.Model(inputs, b.outputs), b


def build_groups_model():
    """Grouped binary convolutions (LCE runs these only with its reference kernel)."""
    import tensorflow as tf

    x64, x128 = tf.keras.Input((SIZE, SIZE, 64)), tf.keras.Input((SIZE, SIZE, 128))
    b = _Branches()
    for padding, pad_values in PADDINGS:
        y = batch_norm()(quant_conv(32, padding, pad_values, 1, 1, groups=2)(x64))
        b.add(y, f"groups2-{padding}{int(pad_values)}", 32)
    y = batch_norm()(quant_conv(64, "same", 1.0, 2, 1, groups=2)(x64))
    y = batch_norm()(quant_conv(8, "valid", 0.0, 1, 1, groups=2)(y))
    b.add(y, "groups2-packed", 8)
    y = batch_norm()(quant_conv(40, "valid", 0.0, 1, 2, groups=4)(x128))
    b.add(y, "groups4-valid-d2", 40)
    return tf.keras.Model([x64, x128], b.outputs), b


def build_int8_model():
    """An int8 model: fake quantization (range [-3, 3]) on the input and after every
    bconv + BN makes LCE write int8 input to LceQuantize, int8 bconv outputs and int8
    model outputs."""
    import tensorflow as tf

    def fake_quant():
        return tf.keras.layers.Lambda(
            lambda t: tf.quantization.fake_quant_with_min_max_args(t, -3.0, 3.0))

    cins = (31, 64)
    inputs = [tf.keras.Input((SIZE, SIZE, c)) for c in cins]
    b = _Branches()
    for i, (x, cin) in enumerate(zip(inputs, cins, strict=True)):
        x = fake_quant()(x)
        for j, (padding, pad_values) in enumerate((("valid", 0.0), ("same", 1.0))):
            stride, dilation = STRIDE_DILATION[(i + 2 * j) % 3]
            y = batch_norm()(quant_conv(33, padding, pad_values, stride, dilation)(x))
            b.add(fake_quant()(y), f"int8-cin{cin}-{padding}{int(pad_values)}-s{stride}d{dilation}",
                  33)
    return tf.keras.Model(inputs, b.outputs), b


def make_inputs(model_bytes: bytes, seed: int, batch: int = 2) -> list[np.ndarray]:
    """Random inputs for every model input, with exact zeros and -0.0 mixed in."""
    from bitlite_runtime import Interpreter

    rng = np.random.default_rng(seed)
    xs = []
    for detail in Interpreter(model_bytes).input_details:
        shape = (batch, *detail["shape"][1:])
        if detail["dtype"] == np.int8:
            xs.append(rng.integers(-128, 128, shape).astype(np.int8))
            continue
        x = rng.normal(0, 1, shape).astype(np.float32)
        x.flat[::7] = 0.0
        x.flat[::11] = -0.0
        xs.append(x)
    return xs


class LceCase:
    """A converted model, its branch names, inputs and LCE's x86 interpreter outputs."""

    def __init__(self, model_bytes: bytes, names: list[str], channels: list[int], seed: int,
                 lce_reference: bool = False):
        from bitlite_runtime import Interpreter
        from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

        self.model = model_bytes
        # Outputs are named o000, o001, ... after the branches; the converter orders
        # them its own way, so look each one's branch up by name. (A graphdef-based
        # conversion, LCE's fallback for Lambda layers, keeps no names: then the branch
        # names are only labels, and every branch has the same channel count.)
        out_names = Interpreter(model_bytes).output_names
        if all(re.fullmatch(r"o\d{3}", n) for n in out_names):
            order = [int(n[1:]) for n in out_names]
            names = [names[i] for i in order]
            channels = [channels[i] for i in order]
        self.names = names
        self.inputs = make_inputs(model_bytes, seed)
        lce = LceInterpreter(model_bytes, use_reference_bconv=lce_reference)
        expected = lce.predict(self.inputs)
        self.expected = expected if isinstance(expected, list) else [expected]
        got = [e.shape[-1] for e in self.expected]
        assert got == channels, f"output order differs from the branches: {got} vs {channels}"


def _cache_dir(builder, bitlite_export: bool = False) -> Path:
    """Converted models, keyed by the source of everything that shapes the model and by
    the converter's version (for bitlite's exporter: all of bitlite's sources): a second
    session skips the conversions (the slow part); a cold one still works."""
    import hashlib
    import inspect

    import larq_compute_engine
    import tensorflow as tf

    parts = [inspect.getsource(f) for f in (builder, quant_conv, batch_norm, _randomize,
                                             _Branches, _sign_layer)]
    parts += [tf.__version__, larq_compute_engine.__version__, repr((CINS, OUT_CHANNELS,
                                                                     PADDINGS, SIZE))]
    if bitlite_export:
        repo = Path(__file__).resolve().parents[2]
        parts += [p.read_text() for p in sorted([*repo.glob("pipeline/**/*.py"),
                                                 *repo.glob("models/**/*.py")])]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    root = Path(os.environ.get("BITLITE_TEST_CACHE", Path.home() / ".cache" / "bitlite"))
    return root / "runtime-test-models" / key


def convert_cached(builder, seed: int, bitlite_export: bool = False, **kwargs) -> bytes:
    """LCE-convert the model `builder` makes (weights randomized with `seed`), cached;
    `bitlite_export`: through bitlite's exporter (pipeline.export.convert) instead."""
    import larq_compute_engine as lce

    cached = _cache_dir(builder, bitlite_export) / f"{builder.__name__}-{seed}.tflite"
    if cached.is_file():
        return cached.read_bytes()
    model = builder()
    model = model[0] if isinstance(model, tuple) else model
    _randomize(model, seed)
    if bitlite_export:
        from pipeline.export.convert import convert_model

        model_bytes = convert_model(model, **kwargs)
    else:
        model_bytes = lce.convert_keras_model(model, **kwargs)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(model_bytes)
    os.replace(tmp, cached)
    return model_bytes


def lce_case(builder, seed: int, lce_reference: bool = False, **kwargs) -> LceCase:
    import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    _, branches = builder()
    model_bytes = convert_cached(builder, seed, **kwargs)
    return LceCase(model_bytes, branches.names, branches.channels, seed, lce_reference)


def build_single_input_model():
    """bconv (bitpacked out) -> binary max pool -> strided bconv: what apps run."""
    import tensorflow as tf

    inp = tf.keras.Input((9, 9, 40))
    y = batch_norm()(quant_conv(64, "same", 1.0, 1, 1)(inp))
    y = tf.keras.layers.MaxPool2D(2)(y)
    y = batch_norm()(quant_conv(10, "valid", 0.0, 2, 1)(y))
    return tf.keras.Model(inp, y)


def build_lenet5():
    """bitlite's default network and method (LeNet-5 BNN, as ``pipeline.train`` makes it);
    weights and batch-norm statistics come from _randomize, so thresholds differ."""
    from models.registry import build_model
    from pipeline.methods import make_method

    return build_model("lenet5", make_method("bnn"), (28, 28, 1), 10)


def lenet5_case() -> LceCase:
    """bitlite's LeNet-5 BNN export (bitpacked bconv -> binary max pool -> bconv chain,
    softmax output) with LCE's x86 outputs."""
    import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    model_bytes = convert_cached(build_lenet5, seed=6, bitlite_export=True)
    return LceCase(model_bytes, ["lenet5-softmax"], [10], seed=6)


def single_input_model() -> bytes:
    import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    return convert_cached(build_single_input_model, seed=4)


def run_ours(case: LceCase, num_threads: int = 1, host: str | None = None,
             kernel: str | None = None) -> list[np.ndarray]:
    """Our runtime on the case's inputs, one sample per invoke (the models have batch 1)."""
    from bitlite_runtime import Interpreter

    interpreter = Interpreter(case.model, num_threads=num_threads, host=host, kernel=kernel)
    batch = case.inputs[0].shape[0]
    per_sample = [interpreter.invoke([x[i : i + 1] for x in case.inputs]) for i in range(batch)]
    return [np.concatenate(outs) for outs in zip(*per_sample, strict=True)]


def compare(case: LceCase, got: list[np.ndarray], exact_float: bool) -> None:
    """Integer outputs equal; float ones within 1e-5 relative (or equal: exact_float)."""
    assert len(got) == len(case.expected)
    failures = []
    for name, ours, lce in zip(case.names, got, case.expected, strict=True):
        assert ours.dtype == lce.dtype and ours.shape == lce.shape, name
        if np.issubdtype(lce.dtype, np.floating):
            rel = np.max(np.abs(ours - lce) / np.maximum(np.abs(lce), 1.0))
            if rel > 1e-5 or (exact_float and not np.array_equal(ours, lce)):
                failures.append(f"{name}: max relative error {rel:.3g}")
        elif not np.array_equal(ours, lce):
            failures.append(f"{name}: {np.sum(ours != lce)} of {lce.size} values differ")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------ parametrization


def installed_hosts() -> list[str]:
    from bitlite_runtime import hosts

    return hosts.installed()


def host_params() -> list:
    """Every host runtime (LiteRT, tflite-runtime, tf.lite), skipped where not installed."""
    from bitlite_runtime import HOSTS

    found = installed_hosts()
    return [pytest.param(h, marks=() if h in found else
                         pytest.mark.skip(reason=f"host runtime {h} is not installed"))
            for h in HOSTS]


def kernel_params() -> list:
    """Every binary-GEMM kernel, skipped (with the reason) where this CPU lacks it."""
    import bitlite_runtime

    found = bitlite_runtime.available_kernels()
    return [pytest.param(k, marks=() if k in found else
                         pytest.mark.skip(reason=f"kernel {k}: not in this build or CPU"))
            for k in bitlite_runtime.KERNELS]


# Runs in another Python (an emulated Arm sysroot, another version): each model file on its
# inputs, one image at a time, outputs saved to argv[1]; a model of one input and one output
# through predict() (what a user calls). Needs only numpy and bitlite_runtime.
GUEST_SCRIPT = """
import sys
import numpy as np
from bitlite_runtime import Interpreter
results = {}
for k, (model, inputs) in enumerate(zip(sys.argv[2::2], sys.argv[3::2])):
    data = np.load(inputs)
    xs = [data[f"arr_{i}"] for i in range(len(data.files))]
    it = Interpreter(open(model, "rb").read(), num_threads=2)
    if len(xs) == 1 and len(it.output_details) == 1:
        results[f"{k}_0"] = it.predict(xs[0])
        continue
    per = [it.invoke([x[i : i + 1] for x in xs]) for i in range(xs[0].shape[0])]
    for j, outs in enumerate(zip(*per)):
        results[f"{k}_{j}"] = np.concatenate(outs)
np.savez(sys.argv[1], **results)
"""

# GUEST_SCRIPT, then one JSON line on stdout saying what ran it: Python, numpy, the host
# runtimes installed there and the one used, and the delegate library loaded.
GUEST_REPORT_SCRIPT = GUEST_SCRIPT + """
import json
import bitlite_runtime
from bitlite_runtime import hosts
print(json.dumps({"python": sys.version.split()[0], "numpy": np.__version__,
                  "host": bitlite_runtime.backend(), "hosts": hosts.installed(),
                  "library": str(bitlite_runtime.library_path())}))
"""


def write_cases(cases: list, folder: Path) -> list[Path]:
    """Each case's model and inputs as files in ``folder``: GUEST_SCRIPT's arguments
    after the output path."""
    args = []
    for k, case in enumerate(cases):
        model, inputs = folder / f"m{k}.tflite", folder / f"x{k}.npz"
        model.write_bytes(case.model)
        np.savez(inputs, *case.inputs)
        args += [model, inputs]
    return args


def read_results(path: Path, cases: list) -> list[list[np.ndarray]]:
    """The outputs GUEST_SCRIPT saved to ``path``, per case."""
    data = np.load(path)
    return [[data[f"{k}_{j}"] for j in range(len(case.expected))]
            for k, case in enumerate(cases)]


def guest_report(stdout: str) -> dict:
    """The JSON line GUEST_REPORT_SCRIPT printed last."""
    import json

    return json.loads(stdout.strip().splitlines()[-1])

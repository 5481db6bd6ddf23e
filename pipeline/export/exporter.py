"""``python -m pipeline.export``: a trained run -> ``model.tflite`` checked against Keras.

Conversion is Larq Compute Engine's, in a child process (:mod:`pipeline.export.convert`), on
the model as rewritten by :mod:`pipeline.export.keras_rewrite`: binary convolutions *and*
binary dense layers become bitpacked ``LceBconv2d`` (scales folded in), and so do k-bit
layers (<= 4-bit uniform activations × <= 4-level weights) as exact sums of binary
products; the report's ``layers`` say which layer became what, into how many products,
and why a layer stayed off the binary kernels. Ternary,
power-of-two and k-bit weights are then stored as int8 with per-channel scales where
their levels fit exactly, or with ``--pack-weights`` as k-bit codes (<= 16 levels) that
only bitlite's runtime decodes (:mod:`pipeline.tflite.rewrite`; parity is then checked
on bitlite_runtime alone). With ``--kbit-fused`` the k-bit layers are exported as
thermometer planes and rewritten into bitlite's fused ops ``BitliteKbitBconv2d`` /
``BitliteKbitQuantize`` (:mod:`pipeline.tflite.kbit_chains`: the same outputs bit for bit,
faster, each binary filter stored once); that file too runs on bitlite_runtime alone and
takes ``model.tflite``'s place, as a packed one does. The whole test set goes
through the .tflite and through Keras; ``export_report.json`` / ``export_report.md``
record size (raw, gzip, ratio to the float32 .tflite of the same network), accuracy of
both, argmax agreement, the largest output difference, how each weight tensor is stored
and the share of multiply-accumulates that are binary. ``model.json`` beside the model
(and the same JSON inside it, metadata ``bitlite_metadata``) tells apps how to feed it.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import cli, data, runs
from pipeline.errors import ParityError, TargetError, UsageError
from pipeline.tflite.reader import bitlite_op_roles, gzip_size, read_model, weight_totals

if TYPE_CHECKING:
    from pipeline.export.logits import Compared

MIN_AGREEMENT = 0.999  # argmax agreement below this fails the export
RANDOM_RTOL = 1e-3  # without labelled data: max |output diff| / max |output| above this fails
RANDOM_SAMPLES = 8  # random inputs checked when a model from elsewhere comes without data
MODEL_JSON = "model.json"
MODEL_FORMAT = "bitlite-model/1"
EXPORT_MD = "export_report.md"
REPRESENTATIVE = 256  # training images that calibrate the int8 baseline
FUSED_ENCODING = "thermometer"  # the plane encoding bitlite's fused k-bit op rewrites
BASELINE_FILES = {"float": "model_float.tflite", "int8": "model_int8.tflite"}

Predict = Callable[[bytes, np.ndarray, bool], np.ndarray]
ANDROID_ASSETS = Path("app/src/main/assets")  # where android_demo/ bundles the model


def lce_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` (a batch) through LCE's interpreter, one sample at a time."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return np.asarray(Interpreter(flatbuffer, num_threads=1).predict(x, verbose=int(progress)))


def tflite_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` through TensorFlow's stock TFLite interpreter (no LCE ops)."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    return np.stack(rows)


def bitlite_predict(flatbuffer: bytes, x: np.ndarray, progress: bool = False) -> np.ndarray:
    """Run ``x`` through bitlite's own runtime (our delegate in the installed TFLite host)."""
    from pipeline import runtime

    interp = runtime.load().Interpreter(flatbuffer, num_threads=1)
    return np.asarray(interp.predict(x), dtype=np.float32)


# Interpreters parity can run with: name -> (predict, what the report says).
INTERPRETERS: dict[str, tuple[Predict, str]] = {
    "lce": (lce_predict, "larq_compute_engine Python Interpreter (x86 reference kernels)"),
    "tflite": (tflite_predict, "tensorflow.lite.Interpreter (stock TFLite, no LCE ops)"),
}
BITLITE = "bitlite"


def register_interpreter(name: str, predict: Predict, description: str) -> None:
    INTERPRETERS[name] = (predict, description)


@functools.cache
def _bitlite_available() -> bool:
    from pipeline import runtime

    try:
        runtime.load()
    except TargetError:
        return False
    return True


def _bitlite_host() -> str:
    from pipeline import runtime

    backend = getattr(runtime.load(), "backend", None)  # an older install may lack it
    return backend() if backend else "its TFLite host"


def interpreters() -> dict[str, tuple[Predict, str]]:
    """The parity interpreters by name; ours joins wherever ``bitlite_runtime`` imports.

    Looked up on first use rather than at import, so importing the exporter loads no
    runtime and changes nothing.
    """
    if BITLITE not in INTERPRETERS and _bitlite_available():
        register_interpreter(
            BITLITE, bitlite_predict, f"bitlite_runtime (bitlite delegate in {_bitlite_host()})"
        )
    return INTERPRETERS


def default_interpreters() -> list[str]:
    """LCE's interpreter (the reference), then ours where it is installed."""
    return ["lce"] + ([BITLITE] if BITLITE in interpreters() else [])


def predict(flatbuffer: bytes, x: np.ndarray, interpreter: str, progress: bool = False):
    if interpreter not in interpreters():
        raise UsageError(
            f"unknown interpreter '{interpreter}'; choose one of: "
            + ", ".join(sorted(interpreters()))
        )
    return INTERPRETERS[interpreter][0](flatbuffer, x, progress)


def parity(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None
) -> dict[str, float | None]:
    """How closely a converted model's outputs follow the Keras model's (accuracies only
    where labels are known)."""
    ref_top, cand_top = reference.argmax(-1), candidate.argmax(-1)
    diff = float(np.max(np.abs(reference - candidate)))
    return {
        "keras_accuracy": None if labels is None else float(np.mean(ref_top == labels)),
        "tflite_accuracy": None if labels is None else float(np.mean(cand_top == labels)),
        "argmax_agreement": float(np.mean(ref_top == cand_top)),
        "max_abs_diff": diff,
        "relative_diff": diff / max(float(np.max(np.abs(reference))), 1e-30),
    }


PARITY_KEYS = (
    "keras_accuracy",
    "tflite_accuracy",
    "argmax_agreement",
    "max_abs_diff",
    "relative_diff",
)


def bitlite_only_flags(pack: bool = False, fused: bool = False) -> str:
    """The options that make a file only bitlite's runtime loads ("" for none)."""
    return " and ".join(f for f, on in (("--pack-weights", pack), ("--kbit-fused", fused)) if on)


def _interpreter_names(
    interpreter: str | Sequence[str] | None, only_bitlite: str = ""
) -> list[str]:
    """The parity interpreters; ``only_bitlite``: the options (:func:`bitlite_only_flags`)
    whose file LCE's interpreter and stock TFLite cannot load: bitlite's runtime alone."""
    if only_bitlite:
        if BITLITE not in interpreters():
            raise UsageError(f"{only_bitlite} files run only on bitlite_runtime: install it")
        others = [] if interpreter is None else [n for n in _listed(interpreter) if n != BITLITE]
        if others:
            raise UsageError(f"{only_bitlite} files run only on bitlite_runtime; "
                             f"--interpreter {others[0]} cannot load them")  # fmt: skip
        interpreter = [BITLITE]
    names = default_interpreters() if interpreter is None else _listed(interpreter)
    unknown = [n for n in names if n not in interpreters()]
    if unknown or not names:
        raise UsageError(
            f"unknown interpreter '{', '.join(unknown)}'; choose from: "
            + ", ".join(sorted(INTERPRETERS))
            + ("" if BITLITE in interpreters() else " (bitlite: bitlite_runtime is not installed)")
        )
    return names


def _listed(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(dict.fromkeys(names))


def check_parity(
    flatbuffer: bytes,
    ev: Evaluation,
    keras_out: np.ndarray,
    interpreter: str,
    progress: bool = False,
) -> dict[str, Any]:
    """Parity of one interpreter's outputs with Keras's; an interpreter that cannot run
    the file (unsupported op option, missing build) fails parity with its error."""
    entry: dict[str, Any] = {"interpreter": INTERPRETERS[interpreter][1]}
    try:
        out = predict(flatbuffer, ev.x, interpreter, progress=progress)
    except Exception as err:  # noqa: BLE001  (any runtime's failure is one line in the report)
        lines = str(err).strip().splitlines() or [""]
        return {**entry, "error": f"{type(err).__name__}: {lines[0]}", "ok": False}
    entry.update(parity(keras_out, out, ev.labels))
    entry["ok"] = ev.judge(entry)
    return entry


def forgive_ties(model: Any, flatbuffer: bytes, ev: Evaluation,
                 checks: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """Random-input parity that failed on LCE's or bitlite's interpreter is measured again
    tie-aware (:mod:`pipeline.export.ties`): a float32 rounding tie at one sign() flips a
    binary net's logits by percents, so the check then passes when Keras, following the
    file's sign at ties only, is within ``rtol`` and no sign differs away from 0. Both
    figures stay in the report (``relative_diff`` and ``ties``)."""
    from pipeline.export.ties import TIE_INTERPRETERS, measure_ties, ties_hold

    for name, check in checks.items():
        if check["ok"] or "error" in check or name not in TIE_INTERPRETERS:
            continue
        check["ties"] = measure_ties(model, flatbuffer, ev.x, name)
        check["ok"] = ties_hold(check["ties"], ev.rtol)


def _verdict(check: dict[str, Any], ev: Evaluation) -> str:
    if "error" in check:
        return f"{check['interpreter']} cannot run it ({check['error']})"
    if ev.labels is None:
        return (
            f"{check['interpreter']} differs from Keras by {check['relative_diff']:.2e} of "
            f"the largest {_compared_word(check.get('compared'))} on {len(ev.x)} inputs "
            f"(need <= {ev.rtol:.0e}){_ties_word(check.get('ties'))}"
        )
    return (
        f"{check['interpreter']} agrees with Keras on {check['argmax_agreement']:.2%} "
        f"of {len(ev.x)} test images (need {ev.min_agreement:.1%})"
    )


def _ties_word(ties: dict[str, Any] | None) -> str:
    """How tie-aware parity saw it (:func:`forgive_ties`), when it was measured."""
    if not ties:
        return ""
    if "error" in ties:
        return f"; tie-aware parity not measured ({ties['error']})"
    word = (
        f"; tie-aware {ties['relative_diff']:.2e} with {ties['ties']} sign tie(s) within "
        f"{ties['tau']:.0e} of 0 following the file, {ties['beyond']} sign(s) differing beyond"
    )
    builtin = ties.get("builtin_float")
    if builtin and "error" not in builtin:
        word += (f"; with the host's builtin float kernels instead of XNNPACK "
                 f"{builtin['relative_diff']:.2e}, {builtin['beyond']} beyond")
    return word


def _compared_word(what: str | None) -> str:
    return "logit (the final softmax's input)" if what == "logits" else "output"


def describe_flatbuffer(flatbuffer: bytes) -> dict[str, Any]:
    fb = read_model(flatbuffer)
    macs = fb.macs()
    total = sum(macs.values())
    weights = fb.weights()
    stored, count, bits = weight_totals(weights)
    return {
        "size_bytes": len(flatbuffer),
        "gzip_bytes": gzip_size(flatbuffer),
        "ops": fb.op_counts(),
        "custom_ops": fb.custom_ops(),
        "macs": macs,
        "binary_mac_fraction": macs["binary"] / total if total else 0.0,
        "weight_bytes": stored,
        "weight_count": count,
        "bits_per_weight": bits,
        "weight_tensors": [
            {
                "op": w.op,
                "name": w.name,
                "output": w.output,
                "dtype": w.dtype,
                "bytes": w.bytes,
                "count": w.count,
                "bits_per_weight": round(w.bits_per_weight, 3),
            }
            for w in weights
        ],
    }


def app_metadata(run: runs.Run) -> dict[str, Any]:
    """The sidecar an app reads: what the model expects and what its outputs mean."""
    config = run.config()
    meta = config["data"]
    preprocessing = _preprocessing(meta)
    return {
        "format": MODEL_FORMAT,
        "model": config["train"]["model"],
        "method": config["method"]["name"],  # a tool run names its tool (inq, progressive)
        "dataset": meta["dataset"],
        "input_shape": meta["input_shape"],
        "input_dtype": meta["input_dtype"],
        "normalization": meta["normalization"],
        **({"preprocessing": preprocessing} if preprocessing else {}),
        "labels": meta["labels"],
        "output": "probabilities",
    }


@dataclass
class Evaluation:
    """The inputs parity runs on, and how it is judged.

    With ``labels`` (a test set): argmax agreement with Keras >= ``min_agreement``. Without
    (a model from elsewhere and random inputs, where many classes may tie): the largest
    output difference relative to the largest |output| <= ``rtol`` — on the logits when
    the model ends in a softmax (:mod:`pipeline.export.logits`)."""

    x: np.ndarray
    labels: np.ndarray | None = None
    representative: np.ndarray | None = None  # calibrates the int8 baseline
    min_agreement: float = MIN_AGREEMENT
    rtol: float = RANDOM_RTOL

    def judge(self, entry: dict[str, Any]) -> bool:
        if self.labels is None:
            return entry["relative_diff"] <= self.rtol
        return entry["argmax_agreement"] >= self.min_agreement


def _preprocessing(meta: dict[str, Any]) -> dict[str, Any] | None:
    """How images are framed before normalization, as the data layer does it for
    evaluation (ImageNet: resize 256, centre crop 224); None: fed as they are. Runs
    trained before config.json recorded it as a table get it from the data layer."""
    recorded = meta.get("preprocessing")
    if isinstance(recorded, dict):
        return recorded
    if meta.get("dataset") == "imagenet2012":
        from pipeline.data.imagenet import PREPROCESSING

        return dict(PREPROCESSING)
    return None


def test_data(run: runs.Run) -> data.Dataset:
    """The run's own test set (same dataset, subset and seed as at training time)."""
    return data.load_run_data(run.config()["train"])


def export_run(
    run: runs.Run,
    min_agreement: float = MIN_AGREEMENT,
    progress: bool = False,
    baselines: Sequence[str] = ("float",),
    interpreter: str | Sequence[str] | None = None,
    allow_inexact: bool = False,
    pack: bool = False,
    fused: bool = False,
) -> dict[str, Any]:
    """Convert ``run``'s model, check parity on its test set, write model + reports.

    ``interpreter``: one name or several (default :func:`default_interpreters`: LCE's,
    then bitlite's runtime where installed); parity must hold on every one, and the
    report's top-level figures are the first one's. ``pack``: weights of <= 16 levels as
    k-bit codes (:mod:`pipeline.tflite.rewrite`); ``fused``: k-bit layers on bitlite's
    fused ops (:func:`store`). Either file runs only on bitlite's runtime, the default
    (and only possible) parity interpreter. Every file is written atomically, and only
    after conversion and parity succeeded: a failed export leaves the run as it was
    (except the report, which says why)."""
    names = _interpreter_names(interpreter, bitlite_only_flags(pack, fused))
    model = run.load_model()  # a clear error if the run has not finished training
    ds = test_data(run)
    ev = Evaluation(data.normalize(ds.x_test), ds.y_test, min_agreement=min_agreement)
    if "int8" in baselines:
        ev.representative = data.normalize(ds.x_train[:REPRESENTATIVE])
    meta = app_metadata(run)
    norm = meta["normalization"]
    options = ExportOptions(baselines, names, allow_inexact, pack, progress, fused)
    return _export(model, run.path, run.name, ev, meta, _pixel_scale(norm), options)


def export_model(
    model: Any,
    out: Path,
    samples: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    normalization: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    min_agreement: float = MIN_AGREEMENT,
    baselines: Sequence[str] = ("float",),
    interpreter: str | Sequence[str] | None = None,
    pack: bool = False,
    progress: bool = False,
    rtol: float = RANDOM_RTOL,
    fused: bool = False,
) -> dict[str, Any]:
    """Export a Keras model from anywhere (larq-zoo, your own code) into ``out``.

    ``samples``: normalized inputs for parity (default: :data:`RANDOM_SAMPLES` random
    ones); ``labels``: their classes, which turn parity into argmax agreement and add
    accuracies; ``normalization``: ``(scale, offset)`` with ``x = pixel · scale + offset``
    for 8-bit pixels, which the app needs and which lets the first layer run on the
    pixels' bit planes when it is centered; ``rtol``: without labels, the largest logit
    (or output) difference relative to the largest that parity accepts. Writes what
    :func:`export_run` writes."""
    names = _interpreter_names(interpreter, bitlite_only_flags(pack, fused))
    shape = tuple(model.input_shape[1:])
    if samples is None:
        samples = _random_inputs(shape, normalization)
    samples = np.asarray(samples, np.float32)
    if samples.shape[1:] != shape:
        raise UsageError(f"samples of shape {samples.shape[1:]} do not fit the model's input {shape}")
    ev = Evaluation(samples, labels, min_agreement=min_agreement, rtol=rtol)
    if "int8" in baselines:
        ev.representative = samples[:REPRESENTATIVE]
    scale, offset = normalization if normalization else (None, None)
    meta = {
        "format": MODEL_FORMAT,
        "model": model.name,
        "input_shape": list(shape),
        "input_dtype": "uint8" if normalization else "float32",
        "normalization": {"scale": scale, "offset": offset} if normalization else None,
        "labels": list(class_names) if class_names else None,
        "output": "the model's own output (logits or probabilities)",
    }
    pixel_scale = _pixel_scale(meta["normalization"])
    options = ExportOptions(baselines, names, False, pack, progress, fused)
    return _export(model, Path(out), model.name, ev, meta, pixel_scale, options)


def _random_inputs(
    shape: tuple[int, ...], normalization: tuple[float, float] | None, n: int = RANDOM_SAMPLES
) -> np.ndarray:
    """Parity inputs when none are given: normalized random pixels where the input's
    normalization is known, else uniform in [-1, 1]."""
    rng = np.random.default_rng(0)
    if normalization is None:
        return rng.uniform(-1, 1, (n, *shape)).astype(np.float32)
    pixels = rng.integers(0, 256, (n, *shape)).astype(np.float32)
    return (pixels * normalization[0] + normalization[1]).astype(np.float32)


def _pixel_scale(normalization: dict[str, Any] | None) -> float | None:
    from pipeline.export.keras_rewrite import centered_pixel_scale

    if not normalization or normalization.get("scale") is None:
        return None
    return centered_pixel_scale(normalization["scale"], normalization["offset"])


@dataclass
class ExportOptions:
    baselines: Sequence[str]
    interpreters: list[str]
    allow_inexact: bool = False
    pack: bool = False
    progress: bool = False
    fused: bool = False  # k-bit layers on bitlite's fused ops (:func:`store`)


@dataclass
class Stored:
    """The converted flatbuffer as the export writes it, and what was done to it."""

    flatbuffer: bytes
    weights: list[Any]  # pipeline.tflite.rewrite's report per weight tensor
    kbit: list[Any]  # pipeline.tflite.kbit_chains.KbitReport per k-bit site (when fused)


def store(flatbuffer: bytes, allow_inexact: bool = False, pack: bool = False,
          fused: bool = False) -> Stored:  # fmt: skip
    """The file the export writes from a conversion: the remaining weights stored int8
    (or, ``pack``, as k-bit codes); ``fused``: the thermometer k-bit sites (a conversion
    with ``encoding=FUSED_ENCODING``) rewritten into bitlite's fused k-bit ops
    (:func:`pipeline.tflite.kbit_chains.fuse_kbit`). Benchmarks build files this way too."""
    from pipeline.tflite.rewrite import int8_weights

    flatbuffer, weights = int8_weights(flatbuffer, allow_inexact=allow_inexact, packed=pack)
    if not fused:
        return Stored(flatbuffer, weights, [])
    from pipeline.tflite.kbit_chains import fuse_kbit

    flatbuffer, kbit = fuse_kbit(flatbuffer)
    return Stored(flatbuffer, weights, kbit)


def fused_layers(kbit: Sequence[Any], plans: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per k-bit site of a ``--kbit-fused`` export, named by its Keras layer:
    planes in and out, pool fused, float or planes output, or why it was not fused."""
    names = [p["layer"] for p in plans]
    layer = {r.conv: _layer_of(r.quantized, names) for r in kbit}
    source = {r.conv: "float" if r.source == "quantize" else
              f"planes of {layer.get(r.source, r.source)}" for r in kbit}  # fmt: skip
    return [
        {
            "layer": layer[r.conv],
            "fused": r.rewritten,
            "planes_in": r.planes,
            "input": source[r.conv],
            "output": r.output,
            "planes_out": r.out_planes,
            "pool_fused": r.pool,
            "reason": r.reason,
        }
        for r in kbit
    ]


def _layer_of(tensor: str, layers: Sequence[str]) -> str:
    """The Keras layer whose name is a path segment of ``tensor`` (LCE keeps
    ``model/layer/...`` names), else the tensor's name."""
    segments = tensor.split(";")[0].split("/")
    return next((name for name in layers if name in segments), tensor)


def _check_fused(fused: list[dict[str, Any]], plans: Sequence[dict[str, Any]]) -> None:
    """``--kbit-fused`` on a model with nothing to fuse is bad input: say why."""
    if any(f["fused"] for f in fused):
        return
    kbit = [p["layer"] for p in plans if p.get("encoding") == FUSED_ENCODING]
    if not kbit:
        raise UsageError(
            "--kbit-fused: no layer has 2- to 4-bit activations into binary products (its "
            "layers are binary W1A1, int8 or float), so there is nothing to fuse; export "
            "without --kbit-fused"
        )
    why = "; ".join(f"{f['layer']}: {f['reason']}" for f in fused) or "no fusable site found"
    raise UsageError(f"--kbit-fused: no k-bit layer could be fused ({why}); "
                     "export without --kbit-fused")  # fmt: skip


def _export(
    model: Any,
    out: Path,
    title: str,
    ev: Evaluation,
    meta: dict[str, Any],
    pixel_scale: float | None,
    opt: ExportOptions,
) -> dict[str, Any]:
    """Convert, check parity on ``ev``, and write the model and its reports into ``out``."""
    from pipeline.export.convert import convert
    from pipeline.tflite.rewrite import embed_metadata

    wanted = sorted(set(opt.baselines) | {"float"})  # the float file is the size reference
    conversion = convert(model, baselines=wanted, representative=ev.representative,
                         pixel_scale=pixel_scale,
                         encoding=FUSED_ENCODING if opt.fused else None)  # fmt: skip
    stored = store(conversion.flatbuffer, opt.allow_inexact, opt.pack, opt.fused)
    fused = fused_layers(stored.kbit, conversion.layers) if opt.fused else []
    if opt.fused:
        _check_fused(fused, conversion.layers)
        for plan in conversion.layers:  # forced by the flag, not by a measurement
            if plan.get("encoding") == FUSED_ENCODING:
                plan["why_encoding"] = "--kbit-fused: bitlite's fused op reads these"
    flatbuffer, weight_reports = stored.flatbuffer, stored.weights
    fb = read_model(flatbuffer)
    needs_lce, bitlite_ops = bool(fb.lce_ops()), fb.bitlite_ops()
    needs_bitlite = bool(bitlite_ops)
    meta = {**meta, "needs_lce": needs_lce, "needs_bitlite_runtime": needs_bitlite}
    flatbuffer = embed_metadata(flatbuffer, meta)

    from pipeline.export.logits import compared

    keras = compared(model, ev.x, labelled=ev.labels is not None)
    names = opt.interpreters
    run, reference, what = keras.candidate(flatbuffer)  # the logits where it has them
    checks = {name: check_parity(run, ev, reference, name, opt.progress) for name in names}
    for check in checks.values():
        check["compared"] = what
    if ev.labels is None:
        forgive_ties(model, flatbuffer, ev, checks)
    primary = checks[names[0]]
    if "error" in primary:  # the reference interpreter cannot run the file: nothing to report
        raise ParityError(f"{primary['interpreter']} cannot run the export: {primary['error']}")
    report: dict[str, Any] = {
        **describe_flatbuffer(flatbuffer),
        **{k: primary[k] for k in PARITY_KEYS},  # the first interpreter's (LCE's by default)
        "test_samples": int(len(ev.x)),
        "labelled": ev.labels is not None,
        "min_agreement": ev.min_agreement,
        "rtol": ev.rtol,
        "interpreter": primary["interpreter"],
        "parity_on": what,  # logits (the final softmax's input) or outputs
        "parity": checks,  # every interpreter checked, by name
        "converter": conversion.strategy,
        "conversion_failures": conversion.failures,
        "layers": conversion.layers,
        "int8_weights": [w.to_dict() for w in weight_reports],
        "needs_lce": needs_lce,
        "needs_bitlite_runtime": needs_bitlite,
        "bitlite_ops": bitlite_ops,  # the ops only bitlite's runtime has, which it needs
        "kbit_fused": fused,  # --kbit-fused: each k-bit site, fused or why not
    }
    report["parity_ok"] = all(c["ok"] for c in checks.values())
    report["baselines"] = _baselines(conversion.baselines, opt, keras, ev)
    if "float" in conversion.baselines:
        float_size = len(conversion.baselines["float"])
        report["float_size_bytes"] = float_size
        report["ratio_to_float"] = float_size / len(flatbuffer)
        report["gzip_ratio_to_float"] = (
            gzip_size(conversion.baselines["float"]) / report["gzip_bytes"]
        )
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(out / runs.EXPORT_REPORT, report)
    runs.write_bytes(out / EXPORT_MD, markdown(title, report).encode())
    if not report["parity_ok"]:
        broken = "; ".join(_verdict(c, ev) for c in checks.values() if not c["ok"])
        raise ParityError(
            f"parity broken: {broken}; nothing exported, see {out / runs.EXPORT_REPORT}"
        )
    runs.write_bytes(out / runs.TFLITE, flatbuffer)
    runs.write_json(out / MODEL_JSON, meta)
    for name, entry in report["baselines"].items():  # written only once parity holds
        if "file" in entry:
            runs.write_bytes(out / entry["file"], conversion.baselines[name])
    return report


def _baselines(
    converted: dict[str, bytes],
    opt: ExportOptions,
    keras: Compared,
    ev: Evaluation,
) -> dict[str, Any]:
    """Size and accuracy of the float / int8 .tflite of the same network (stock TFLite).
    An entry with ``file`` is written by :func:`export_run` once parity has held."""
    out: dict[str, Any] = {}
    for name, blob in converted.items():
        entry = {k: v for k, v in describe_flatbuffer(blob).items() if k != "weight_tensors"}
        if name in opt.baselines:  # measured and written only when asked for (--baselines)
            run, reference, entry["compared"] = keras.candidate(blob)
            entry.update(parity(reference, tflite_predict(run, ev.x, opt.progress), ev.labels))
            entry["interpreter"] = INTERPRETERS["tflite"][1]
            entry["file"] = BASELINE_FILES[name]
        out[name] = entry
    return out


def markdown(title: str, r: dict[str, Any]) -> str:
    """The export report for people: one table per question."""
    kib = 1024
    lines = [
        f"# Export report: {title}",
        "",
        f"Converter: {r['converter']}; parity interpreter: {r['interpreter']}.",
        f"Runs on: {runs_on(r)}.",
        "",
        "| file | size KiB | gzip KiB | × smaller than float | bits/weight | tflite acc | keras acc | argmax agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| model.tflite | {r['size_bytes'] / kib:.1f} | {r['gzip_bytes'] / kib:.1f} | "
        f"{r.get('ratio_to_float', float('nan')):.1f} | {r['bits_per_weight']:.2f} | "
        f"{_acc(r['tflite_accuracy'])} | {_acc(r['keras_accuracy'])} | {r['argmax_agreement']:.4%} |",
    ]
    for name, b in r["baselines"].items():
        acc = _acc(b.get("tflite_accuracy"))
        agree = f"{b['argmax_agreement']:.4%}" if "argmax_agreement" in b else "–"
        ratio = r.get("float_size_bytes", 0) / b["size_bytes"]
        lines.append(
            f"| {name} baseline | {b['size_bytes'] / kib:.1f} | {b['gzip_bytes'] / kib:.1f} "
            f"| {ratio:.1f} | {b['bits_per_weight']:.2f} | {acc} | – | {agree} |"
        )
    lines += [
        "",
        f"Parity over {r['test_samples']} {_parity_rule(r)} on every interpreter:",
        "",
        "| interpreter | tflite acc | argmax agreement | max abs diff | relative diff | parity |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [_parity_row(c) for c in r.get("parity", {}).values()]
    lines += [
        "",
        "| layer (output tensor) | op | stored | bytes | bits/weight |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {w['output']} | {w['op']} | {w['dtype']} | {w['bytes']} | {w['bits_per_weight']:.2f} |"
        for w in r["weight_tensors"]
    ]
    macs = r["macs"]
    total = sum(macs.values()) or 1
    lines += [
        "",
        "MACs per inference: "
        + ", ".join(f"{k} {v:,} ({v / total:.1%})" for k, v in macs.items())
        + " (binary: on LceBconv2d, every binary product counted).",
    ]
    lines += layer_table(r.get("layers", []))
    lines += fused_table(r.get("kbit_fused", []))
    inexact = [w for w in r["int8_weights"] if not w["exact"]]
    if inexact:
        lines += ["", "Weights whose levels do not fit int8 exactly:"]
        lines += [f"- {w['tensor']}: stored {w['stored']}; {w['reason']}" for w in inexact]
    if r["conversion_failures"]:
        lines += ["", "Conversion fallbacks: " + "; ".join(r["conversion_failures"])]
    return "\n".join(lines) + "\n"


def products_label(plan: dict[str, Any]) -> str:
    """``k × J (+ones)``: activation planes × weight planes of a decomposed layer."""
    if plan.get("action") != "planes->bconv":
        return "1" if "bconv" in plan.get("action", "") else "–"
    ones = " + ones" if plan.get("ones_filter") else ""
    return f"{plan['activation_planes']} × ({plan['weight_planes']}{ones})"


def encoding_label(plan: dict[str, Any]) -> str:
    """The plane encoding of a decomposed layer and the cost model's estimates (issue 16)."""
    encoding = plan.get("encoding")
    if plan.get("action") != "planes->bconv" or not encoding:
        return "–"
    costs = plan.get("costs") or {}
    estimate = ", ".join(f"{e} {c:,.0f}" for e, c in costs.items())
    why = f", {plan['why_encoding']}" if plan.get("why_encoding") else ""
    return f"{encoding}" + (f" (est. cost {estimate}{why})" if len(costs) > 1 else "")


def layer_table(plans: Sequence[dict[str, Any]]) -> list[str]:
    """One row per quantized layer: what it runs on, into how many binary products, and,
    for a layer left off the binary kernels, why (issue 16)."""
    if not plans:
        return []
    lines = [
        "",
        "Each quantized layer (binary products: per output, activation planes × weight "
        "planes, + ones: an all-ones filter carrying the weights' offsets; plane encoding: "
        "binary = the input's bit planes, one product each on the batch axis, thermometer = "
        "its n − 1 equal planes side by side on the channel axis, one longer product; the "
        "cheaper by pipeline.export.plane_cost, estimates in aarch64 instructions):",
        "",
        "| quantized layer | kind | became | activation planes × weight planes | "
        "binary products | plane encoding | why not binary |",
        "|---|---|---|---|---:|---|---|",
    ]
    for p in plans:
        binary = "bconv" in p["action"]
        products = p.get("products") or (1 if binary else "–")
        lines.append(
            f"| {p['layer']} | {p['kind']} | {p['action']} | {products_label(p)} | "
            f"{products} | {encoding_label(p)} | "
            f"{'' if binary else p.get('reason') or 'weights not binary'} |"
        )
    return lines


def fused_table(fused: Sequence[dict[str, Any]]) -> list[str]:
    """``--kbit-fused``: one row per k-bit site, on bitlite's fused op or why not."""
    if not fused:
        return []
    lines = [
        "",
        "k-bit layers on bitlite's fused op (--kbit-fused: BitliteKbitBconv2d over the "
        "input's bit planes; input planes made from float by BitliteKbitQuantize or written "
        "by the layer before; output float, or the next layer's planes with a max-pool "
        "between them run inside the op):",
        "",
        "| layer | fused | input | planes in | output | planes out | pool fused | why not |",
        "|---|---|---|---:|---|---:|---|---|",
    ]
    lines += [
        f"| {f['layer']} | {'yes' if f['fused'] else 'no'} | {f['input'] if f['fused'] else '–'} "
        f"| {f['planes_in'] or '–'} | {f['output'] or '–'} | {f['planes_out'] or '–'} | "
        f"{'yes' if f['pool_fused'] else 'no'} | {f['reason']} |"
        for f in fused
    ]
    return lines


def runs_on(r: dict[str, Any]) -> str:
    """Which interpreters can run the file: LCE ops need LCE's or bitlite's runtime."""
    if r.get("needs_bitlite_runtime"):
        ops = r.get("bitlite_ops") or ["BitliteDecodeWeights"]  # reports before it was kept
        return (
            f"needs bitlite_runtime only (custom ops {bitlite_op_roles(ops)}); "
            "LCE's interpreter and stock TFLite cannot load it"
        )
    if not r["needs_lce"]:
        return "any TFLite interpreter"
    ours = r.get("parity", {}).get(BITLITE, {}).get("ok")
    return (
        f"LCE custom ops ({', '.join(r['custom_ops'])}): LCE's interpreter"
        + (", or bitlite_runtime (parity checked)" if ours else "")
        + "; not the stock TFLite interpreter"
    )


def _parity_row(c: dict[str, Any]) -> str:
    if "error" in c:
        return f"| {c['interpreter']} | – | – | – | – | cannot run: {c['error']} |"
    return (
        f"| {c['interpreter']} | {_acc(c['tflite_accuracy'])} | {c['argmax_agreement']:.4%} | "
        f"{c['max_abs_diff']:.2e} | {c.get('relative_diff', float('nan')):.2e} | "
        f"{'ok' if c['ok'] else 'BROKEN'}{_ties_word(c.get('ties'))} |"
    )


def _acc(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _parity_rule(r: dict[str, Any]) -> str:
    if r.get("labelled", True):
        return f"test images (needs argmax agreement ≥ {r['min_agreement']:.1%})"
    return (
        f"random inputs, no labels (needs max |diff| ≤ {r['rtol']:.0e} of the largest "
        f"|{_compared_word(r.get('parity_on'))}|)"
    )


def android_assets(app: Path) -> Path:
    """The assets folder of the Android demo project ``app``; checked before any slow work."""
    if not (app / "app" / "src" / "main" / "AndroidManifest.xml").is_file():
        raise UsageError(f"{app} is not the Android demo project (expected android_demo/)")
    return app / ANDROID_ASSETS


def copy_to_android(run: runs.Run, assets: Path) -> None:
    """Bundle the exported model and its sidecar into the app (read by ModelMetadata.kt)."""
    for name in (runs.TFLITE, MODEL_JSON):  # the app's asset names are the run's file names
        runs.write_bytes(assets / name, run.file(name).read_bytes())


def exported_as_float(report: dict[str, Any]) -> bool:
    """No binary or int8 arithmetic in the file and no layer rewritten: a float model
    (an int8-qat run's convolutions are int8, so it is not one)."""
    macs = report["macs"]
    return not macs.get("binary") and not macs.get("int8") and not report["layers"]


def summary(out: Path, report: dict[str, Any]) -> str:
    ops = ", ".join(f"{k}×{v}" for k, v in sorted(report["ops"].items()))
    r = report
    lines = [
        f"exported {out / runs.TFLITE} ({r['converter']})",
        f"  size            {r['size_bytes'] / 1024:.1f} KiB, gzip {r['gzip_bytes'] / 1024:.1f} KiB"
        + (
            f", {r['ratio_to_float']:.1f}× smaller than float32 ({r['float_size_bytes'] / 1024:.1f} KiB)"
            if "ratio_to_float" in r
            else ""
        ),
        f"  weights         {r['bits_per_weight']:.2f} bits/weight stored on average",
        f"  accuracy        keras {_acc(r['keras_accuracy'])}  tflite {_acc(r['tflite_accuracy'])}"
        f"  ({r['test_samples']} test images, {r['interpreter']})",
        *(
            f"  parity {name:<8} argmax agreement {c['argmax_agreement']:.4%}, "
            f"max |diff| {c['max_abs_diff']:.2e} ({c['interpreter']})"
            for name, c in r["parity"].items()
        ),
        f"  binary MACs     {r['binary_mac_fraction']:.1%} of {sum(r['macs'].values()):,}",
        f"  ops             {ops}",
        f"  runs on         {runs_on(r)}",
    ]
    for p in r.get("layers", []):
        if p["action"] == "planes->bconv":
            lines.append(
                f"  binary products {p['layer']}: {products_label(p)} planes "
                f"= {p['products']} per output, {encoding_label(p)}"
            )
        elif "bconv" not in p["action"]:
            lines.append(
                f"  not binary      {p['layer']}: {p.get('reason') or 'weights not binary'}"
            )
    for f in r.get("kbit_fused", []):
        lines.append(f"  k-bit fused     {f['layer']}: " + (
            f"{f['planes_in']} planes in from {f['input']} -> {f['output']}"
            + (f" ({f['planes_out']} planes)" if f["output"] == "planes" else "")
            + (", max-pool inside" if f["pool_fused"] else "")
            if f["fused"] else f"not fused: {f['reason']}"
        ))  # fmt: skip
    for name, b in r["baselines"].items():
        if "tflite_accuracy" in b:
            lines.append(
                f"  {name:<6} baseline {b['size_bytes'] / 1024:.1f} KiB, gzip "
                f"{b['gzip_bytes'] / 1024:.1f} KiB, accuracy {_acc(b['tflite_accuracy'])} "
                f"-> {out / b['file']}"
            )
    lines += [
        f"  note            {w['tensor']}: {w['reason']}"
        for w in r["int8_weights"]
        if not w["exact"]
    ]
    lines += [f"  fallback        {f}" for f in r["conversion_failures"]]
    if exported_as_float(r):
        lines.append("  note            no quantized layers: exported as float (see --baselines for int8)")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    p = cli.parser("python -m pipeline.export", __doc__.split("\n\n")[0])
    p.add_argument("--run", help="run directory (default: the latest run under --root)")
    p.add_argument("--root", type=Path, default=runs.DEFAULT_ROOT, help="where runs live")
    foreign = p.add_argument_group(
        "a model from elsewhere (instead of a run): parity on random inputs unless you "
        "export through pipeline.export.export_model with your data"
    )
    foreign.add_argument("--keras", type=Path, metavar="PATH",
                         help="a saved Keras model: .keras, .h5 or a SavedModel folder")  # fmt: skip
    foreign.add_argument("--out", type=Path, metavar="DIR", help="where its export goes")
    foreign.add_argument("--input-scale", type=float, metavar="SCALE",
                         help="the model's input is x = pixel * SCALE + OFFSET for 8-bit pixels")  # fmt: skip
    foreign.add_argument("--input-offset", type=float, metavar="OFFSET", help="see --input-scale")
    foreign.add_argument(
        "--input-shape", metavar="H,W,C", help="H,W,C where the model leaves them unknown"
    )
    foreign.add_argument("--labels", type=Path, metavar="FILE",
                         help="class names, one per line (for the app)")  # fmt: skip
    foreign.add_argument("--samples", type=int, default=RANDOM_SAMPLES,
                         metavar="N", help="random inputs parity runs on")  # fmt: skip
    p.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        help="fail when Keras/TFLite argmax agreement is below this",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also write and measure model_float.tflite and model_int8.tflite "
        "(post-training full int8) of the same network",
    )
    p.add_argument(
        "--interpreter",
        action="append",
        choices=sorted(interpreters()),
        help="check parity on this interpreter; repeat for several (default: "
        f"{' and '.join(default_interpreters())}); the first one's figures lead the report",
    )
    p.add_argument(
        "--allow-inexact-int8",
        action="store_true",
        help="store weights whose levels do not fit int8 exactly as plain int8 anyway",
    )
    p.add_argument(
        "--pack-weights",
        action="store_true",
        help="store weights of <= 16 levels (ternary, po2, weight-shared) as k-bit codes; "
        "the file then runs only on bitlite_runtime (parity is checked there)",
    )
    p.add_argument(
        "--kbit-fused",
        action="store_true",
        help="run k-bit layers (2-4-bit activations into binary weights: dorefa, qnn) on "
        "bitlite's fused ops BitliteKbitBconv2d/BitliteKbitQuantize: the same outputs, "
        "faster, each binary filter stored once; model.tflite then runs only on "
        "bitlite_runtime (parity is checked there). A run with no k-bit layer is refused",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--android",
        type=Path,
        metavar="DIR",
        help="also bundle the model into the Android demo project DIR",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not 0 < args.min_agreement <= 1:
        raise UsageError(f"--min-agreement must be in (0, 1], got {args.min_agreement}")
    if args.keras is not None or args.out is not None:
        return _main_foreign(args)
    assets = android_assets(args.android) if args.android is not None else None
    run = runs.resolve(args.run, root=args.root)
    report = export_run(
        run,
        min_agreement=args.min_agreement,
        progress=not args.quiet,
        baselines=("float", "int8") if args.baselines else (),
        interpreter=args.interpreter,
        allow_inexact=args.allow_inexact_int8,
        pack=args.pack_weights,
        fused=args.kbit_fused,
    )
    print(summary(run.path, report))
    if assets is not None:
        copy_to_android(run, assets)
        print(f"copied {runs.TFLITE} and {MODEL_JSON} to {assets}")
    return 0


def _main_foreign(args: argparse.Namespace) -> int:
    """``--keras PATH --out DIR``: every input is checked before the model loads."""
    if args.keras is None or args.out is None:
        raise UsageError("--keras and --out go together (a run directory needs neither)")
    if args.run is not None or args.android is not None:
        raise UsageError("--keras exports a model file; --run and --android are for runs")
    if (args.input_scale is None) != (args.input_offset is None):
        raise UsageError("give --input-scale and --input-offset together")
    if args.input_scale is not None and not args.input_scale > 0:
        raise UsageError("--input-scale must be positive")
    if args.samples < 1:
        raise UsageError("--samples must be at least 1")
    if args.out.exists() and (args.out / runs.TFLITE).exists():
        raise UsageError(f"{args.out} already holds an export; choose another --out")
    names = _read_labels(args.labels) if args.labels is not None else None
    shape = _parse_shape(args.input_shape) if args.input_shape else None
    from pipeline.serialization import load_foreign_model

    model = _with_input_shape(load_foreign_model(args.keras), shape)
    if names is not None and len(names) != int(model.output_shape[-1]):
        raise UsageError(f"--labels has {len(names)} names for {model.output_shape[-1]} outputs")
    norm = (args.input_scale, args.input_offset) if args.input_scale is not None else None
    inputs = _random_inputs(tuple(model.input_shape[1:]), norm, args.samples)
    report = export_model(
        model, args.out, samples=inputs, normalization=norm, class_names=names,
        baselines=("float", "int8") if args.baselines else (), interpreter=args.interpreter,
        pack=args.pack_weights, progress=not args.quiet, fused=args.kbit_fused,
    )  # fmt: skip
    print(summary(args.out, report))
    return 0


def _read_labels(path: Path) -> list[str]:
    try:
        names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --labels {path}: {err}") from None
    if not names:
        raise UsageError(f"--labels {path} holds no class names")
    return names


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape {text}: expected H,W,C, e.g. 224,224,3") from None
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape {text}: expected three positive sizes H,W,C")
    return shape


def _with_input_shape(model: Any, shape: tuple[int, ...] | None) -> Any:
    """The model with a fully known input shape (given or its own); else a clear error."""
    import tensorflow as tf

    own = model.input_shape
    if isinstance(own, list):
        raise UsageError("bitlite exports models with one image input; this one has several")
    if shape is None:
        if any(d is None for d in own[1:]):
            raise UsageError(f"the model's input shape {own[1:]} has unknown sizes: "
                             "give --input-shape H,W,C")  # fmt: skip
        return model
    if len(shape) != len(own) - 1 or any(
        d not in (None, s) for d, s in zip(own[1:], shape, strict=True)
    ):
        raise UsageError(f"--input-shape {shape} does not fit the model's input {own[1:]}")
    x = tf.keras.Input(shape)
    return tf.keras.Model(x, model(x), name=model.name)


if __name__ == "__main__":
    cli.run(main)

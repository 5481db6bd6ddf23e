"""larq-zoo's architectures through bitlite's export: the acceptance set for models from
elsewhere (issue 17).

Recipe — a larq-zoo model exported, checked and run on bitlite's runtime::

    pip install -c constraints.txt --no-deps larq-zoo==2.4.0 zookeeper==1.4.0 "typeguard>=4,<5"
    python - <<'EOF'
    import pipeline, larq_zoo                     # pipeline first: Keras 2 (tf-keras)
    from pipeline.export import export_model
    model = larq_zoo.sota.QuickNet(weights=None)  # or your trained weights file
    export_model(model, "exports/quicknet", normalization=(1 / 127.5, -1.0))
    EOF

(``--no-deps``: larq-zoo 2.4 asks for ``larq~=0.13`` and an older zookeeper stack; it runs
with larq 0.14 and tf-keras 2.16.) Or, saved, ``python -m pipeline.export --keras
model.h5 --out DIR``. The table::

    python -m benchmarks.zoo [--size 224] [--models QuickNet ...] [--latency RUNS]
        [--aarch64 QuickNetSmall QuickNet BiRealNet] [--cache DIR] [--out F]

Every architecture of ``larq_zoo.sota`` and ``larq_zoo.literature`` is built with random
weights (``weights=None``: pretrained weights cannot be downloaded here) and random
batch-norm statistics, exported with :func:`pipeline.export.export_model` and checked on 8
random inputs against Keras on LCE's interpreter and on bitlite's runtime: the largest
|logit| difference (the input of the final softmax) relative to the largest |logit|,
strict and tie-aware (:mod:`pipeline.export.ties`: a float32 rounding tie at one sign()
flips a random binary net's logits by percents; Keras then follows the file's sign where
|x| is within 1e-5 of its largest — a k-bit activation its level within 1e-5 of a
rounding edge — and decisions that differ farther away are counted).
Size is compared with the smallest possible file: one bit per binary weight plus every
other weight tensor as stored. Latency (``--latency RUNS``) is bitlite's delegate (AVX-512
and AVX2 kernels) and LCE's x86 interpreter (its portable reference kernels: not a device
figure), 1 thread, warm (each timed invoke right after an untimed one of the same engine:
the others' invokes evict its caches), interleaved run by run; on a shared machine only
the ratios mean
something. ``--aarch64`` counts guest instructions per inference under qemu-aarch64
(exact, repeatable). Each model's row and its exported file are kept in ``--cache``
(NAME.json, NAME.tflite), so an interrupted table resumes where it stopped (failed rows are
retried), and latency and instruction counts are measured on the cached file, not part of
what is cached under: ``--latency RUNS --retime`` re-times every row in minutes without
re-exporting; ``--fresh`` re-exports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.table import write_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))  # this checkout's runtime, not an installed one

RESULTS = Path(__file__).parent / "results" / "zoo.md"
CACHE = ROOT / ".cache" / "zoo"  # ignored by git
LCE = "LCE x86 reference"
GOAL_RTOL = 1e-3  # max |logit difference| / max |logit| (issue 17)
KERNELS = ("avx512", "avx2")
SAMPLES = 8  # random inputs parity runs on (issue 17)
TIES_VERSION = 1  # rows cached before tie-aware parity existed are recomputed


def architectures() -> dict[str, Any]:
    """Name -> builder for every model class larq-zoo exports (CamelCase names)."""
    import larq_zoo as lqz

    found = {}
    for module in (lqz.sota, lqz.literature):
        for name in getattr(module, "__all__", dir(module)):
            if name[0].isupper() and callable(getattr(module, name)):
                found[name] = getattr(module, name)
    return dict(sorted(found.items()))


def randomize_batch_norm(model: Any, seed: int = 0) -> None:
    """Random batch-norm statistics, as a trained model has. Untrained BN is the identity,
    so a binary layer's integer popcounts reach the next sign() unchanged and many are
    exactly 0, where float rounding in either runtime decides the sign: parity on such a
    model measures ties, not the export."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for w in layer.weights:
                low, high = (0.5, 2.0) if "variance" in w.name or "gamma" in w.name else (-0.3, 0.3)
                w.assign(rng.uniform(low, high, w.shape).astype(np.float32))


def smallest_bytes(report: dict[str, Any]) -> float:
    """One bit per binary weight, every other weight tensor as the file stores it."""
    total = 0.0
    for w in report["weight_tensors"]:
        binary = w["op"] == "LceBconv2d"
        total += w["count"] / 8 if binary else w["bytes"]
    return total


def latency_ms(flatbuffer: bytes, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median warm ms per inference, bitlite (each x86 kernel) and LCE, interleaved run by
    run: each timed invoke follows an untimed one of the same engine."""
    import bitlite_runtime
    from larq_compute_engine.tflite.python.interpreter import Interpreter as Lce

    kernels = [k for k in KERNELS if k in bitlite_runtime.available_kernels()]
    engines: dict[str, Any] = {
        f"bitlite {k}": bitlite_runtime.Interpreter(flatbuffer, num_threads=1, kernel=k)
        for k in kernels
    }
    engines[LCE] = Lce(flatbuffer, num_threads=1)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(runs):
        for name, engine in engines.items():
            # Untimed first: the other engines' invokes (LCE's: hundreds of MB touched)
            # have evicted this one's weights and activations, and a cold invoke takes
            # 2-3x a warm one; an inference loop runs warm.
            engine.predict(x)
            start = time.perf_counter()
            engine.predict(x)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def aarch64_instructions(path: Path) -> tuple[int, bool | None]:
    """(guest instructions per inference, outputs equal the host's) under qemu-aarch64."""
    from pipeline.bench.targets import make_target
    from pipeline.bench.targets.base import Settings
    from pipeline.bench.targets.measure import measure

    qemu = make_target("qemu-aarch64", progress=lambda m: print(f"  {m}", flush=True))
    m = measure(path, qemu, Settings(runs=1, warmup=1))
    return int(m.instructions_per_invoke), (m.parity or {}).get("ok")


def build(builder: Any, size: int) -> Any:
    """One architecture at ``size``×``size`` with random weights and batch-norm statistics."""
    import tensorflow as tf

    tf.keras.backend.clear_session()  # one 224×224 model at a time in memory
    tf.keras.utils.set_random_seed(0)  # the same initial weights on every (re-)export
    model = builder(input_shape=(size, size, 3), weights=None, num_classes=1000)
    randomize_batch_norm(model)
    return model


def export_row(name: str, model: Any, out: Path, x: np.ndarray | None = None) -> dict[str, Any]:
    """Export one architecture into ``out`` with parity on ``x`` (default: the export's
    own random inputs); its row (or the error that stopped it).

    The export's own parity threshold is off here: the table compares the differences
    with the goal itself, and still measures a file that misses it, to show by how much."""
    from pipeline.export import export_model

    start = time.perf_counter()
    try:
        report = export_model(model, out, samples=x, interpreter=["lce", "bitlite"],
                              rtol=float("inf"))  # fmt: skip
    except Exception as err:  # noqa: BLE001  (one row says why, the rest go on)
        return {"model": name, "error": _first_line(err)}
    parity = {k: c.get("relative_diff") for k, c in report["parity"].items()}
    return {
        "model": name,
        "converter": report["converter"],
        "fallbacks": report["conversion_failures"],
        "mb": report["size_bytes"] / 1e6,
        "vs_smallest": report["size_bytes"] / smallest_bytes(report),
        "binary_macs": report["binary_mac_fraction"],
        "compared": report["parity_on"],
        "parity": parity,
        "ok": all(v is not None and v <= GOAL_RTOL for v in parity.values()),
        "export_s": time.perf_counter() - start,
    }


def inputs(size: int) -> np.ndarray:
    """The :data:`SAMPLES` random inputs every row is checked (and timed) on."""
    x = np.random.default_rng(0).uniform(-1, 1, (SAMPLES, size, size, 3))
    return x.astype(np.float32)


def exported_row(name: str, builder: Any, size: int, keep: Path) -> dict[str, Any]:
    """Export one architecture and check its tie-aware parity; the file is kept at ``keep``
    (the cache), so latency and instruction counts are (re)measured without re-exporting."""
    try:
        model = build(builder, size)
    except Exception as err:  # noqa: BLE001  (XNORNet at 64×64: one row, not the table)
        return {"model": name, "error": f"building it failed: {_first_line(err)}"}
    x = inputs(size)
    with tempfile.TemporaryDirectory(prefix="bitlite-zoo-") as tmp:
        result = export_row(name, model, Path(tmp), x)
        path = Path(tmp) / "model.tflite"
        if "error" in result or not path.exists():
            return result
        result["ties"] = tie_rows(model, path.read_bytes(), x, list(result["parity"]))
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, keep)
    return result


def measure(result: dict[str, Any], path: Path, args: argparse.Namespace) -> bool:
    """Time and count ``result``'s cached file where asked and not done yet (latency again
    with ``--retime``; instruction counts are exact, so a count stays). True if it did."""
    name, done = result["model"], False
    if args.latency and (args.retime or result.get("runs") != args.latency):
        print(f"  timing {name} ({args.latency} runs)", flush=True)
        result["ms"] = latency_ms(path.read_bytes(), inputs(args.size)[:1], args.latency)
        result["runs"], done = args.latency, True
    if name in (args.aarch64 or []) and "a64" not in result:
        result.pop("a64_error", None)  # a failed count is retried
        try:
            result["a64"], result["a64_parity"] = aarch64_instructions(path)
        except Exception as err:  # noqa: BLE001  (the export's row still stands)
            result["a64_error"] = (str(err).strip().splitlines() or [""])[0][:200]
        done = True
    return done


def tie_rows(model: Any, flatbuffer: bytes, x: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Tie-aware parity (:func:`pipeline.export.ties.measure_ties`) on each interpreter, or
    its error."""
    from pipeline.export.ties import measure_ties

    return {name: measure_ties(model, flatbuffer, x, name) for name in names}


def markdown(rows: list[dict[str, Any]], size: int) -> str:
    lines = [
        f"Input {size}×{size}×3, random weights and batch-norm statistics, {SAMPLES} random "
        "inputs in [-1, 1]. Parity: max |logit difference| / max |logit| against Keras "
        "(logits = the final softmax's input; goal ≤ 1e-3). Strict: Keras as it is. "
        "Tie-aware (pipeline.export.ties): Keras again, each sign() taking the file's own "
        "decision where |x| ≤ 1e-5 of its largest |x| (a float32 rounding tie; the number "
        "of such flips and the closest-to-0 one beside it) and its own everywhere else, "
        "so a real conversion error still shows; a k-bit activation (DoReFa) likewise "
        "takes the file's level within 1e-5 of a rounding edge; decisions that differ "
        "farther away are counted as 'beyond' (each a bug in the file or its kernels — or, on bitlite's runtime, XNNPACK's float ops around them rounding past the band: a bitlite row with any is measured again with the host's builtin float kernels). Size: the file against the smallest possible "
        "(1 bit per binary weight + every other weight as stored). Latency: median ms, "
        "1 thread, warm (each timed invoke right after an untimed one of the same engine), interleaved; LCE's x86 interpreter runs its portable reference kernels. "
        "aarch64: guest instructions per inference under qemu-aarch64 (bitlite's NEON "
        "kernels), outputs checked against the host's.",
        "",
        "| model | converter | MB | × smallest | binary MACs | strict LCE | strict bitlite | "
        "tie-aware LCE | tie-aware bitlite | ms bitlite AVX-512 | ms bitlite AVX2 | ms LCE | "
        "LCE ÷ AVX-512 | LCE ÷ AVX2 | aarch64 instructions |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    notes: list[str] = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} |" + " |" * 13)
            continue
        p, ms, ties = r["parity"], r.get("ms", {}), r.get("ties", {})
        converter = r["converter"] + (" (fallback)" if r["fallbacks"] else "")
        notes += [f"{r['model']}: {f}" for f in r["fallbacks"]]
        said = {k: n for k, t in ties.items() if (n := _tie_note(t))}
        if len(set(said.values())) == 1:  # the same on every interpreter: once
            notes.append(f"{r['model']} ({', '.join(said)}): {next(iter(said.values()))}")
        else:
            notes += [f"{r['model']} on {k}: {n}" for k, n in said.items()]
        lines.append(
            f"| {r['model']} | {converter} | {r['mb']:.2f} | {r['vs_smallest']:.3f} | "
            f"{r['binary_macs']:.1%} | {_diff(p.get('lce'))} | {_diff(p.get('bitlite'))} | "
            f"{_tie(ties.get('lce'))} | {_tie(ties.get('bitlite'))} | "
            + " | ".join(_ms(ms.get(f"bitlite {k}")) for k in KERNELS)
            + f" | {_ms(ms.get(LCE))} | "
            + " | ".join(_ratio(ms.get(LCE), ms.get(f"bitlite {k}")) for k in KERNELS)
            + f" | {_a64(r)} |"
        )
    if notes:
        lines += ["", "Notes (conversion fallbacks; quantized inputs not covered, and where "
                  "decisions differ, by interpreter):", ""]  # fmt: skip
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _diff(value: float | None) -> str:
    if value is None:
        return "cannot run"
    return f"{value:.1e}" + ("" if value <= GOAL_RTOL else " (over the goal)")


def _tie(t: dict[str, Any] | None) -> str:
    """``diff (n ties ≤ |x|)``, and the signs beyond the tie band when any."""
    if not t:
        return "–"
    if "error" in t:
        return "not measured"
    cell = _diff(t["relative_diff"])
    if t["ties"]:
        cell += f"; {t['ties']} tie(s) ≤ {t['largest_tie']:.0e}"
    if t["beyond"]:
        cell += f"; {t['beyond']} beyond"
    builtin = t.get("builtin_float")
    if builtin and "error" not in builtin:
        cell += (f"; float ops on the host's builtin kernels instead of XNNPACK: "
                 f"{_diff(builtin['relative_diff'])}, {builtin['beyond']} beyond")
    return cell


def _tie_note(t: dict[str, Any]) -> str:
    if "error" in t:
        return f"tie-aware parity not measured: {t['error']}"
    parts = []
    if not t["layers"]:
        parts.append("no sign() or k-bit input quantizer: tie-aware is strict")
    elif t["layers_found"] < t["layers"]:
        parts.append(f"{t['layers_found']} of {t['layers']} quantized inputs found in the file")
    if t["beyond"] or t["relative_diff"] > GOAL_RTOL:
        parts.append("; ".join(t["where"]) or "no decision differs")
    return "; ".join(parts)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _ratio(slow: float | None, fast: float | None) -> str:
    return "–" if slow is None or not fast else f"{slow / fast:.1f}×"


def _a64(r: dict[str, Any]) -> str:
    if "a64_error" in r:
        return f"failed: {r['a64_error']}"
    if "a64" not in r:
        return "–"
    return f"{r['a64']:,}" + ("" if r.get("a64_parity") else " (outputs differ)")


def cached_row(cache: Path, name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """The row exported before for ``name`` at the same size, with its file still there."""
    path = cache / f"{name}.json"
    if args.fresh or not path.exists() or not (cache / f"{name}.tflite").exists():
        return None
    entry = json.loads(path.read_text())
    if entry.get("settings") != _settings(args) or "error" in entry["row"]:
        return None  # another size or version, or a failure worth retrying
    return entry["row"]


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What an exported row depends on (latency and aarch64 are measured on its file)."""
    return {"size": args.size, "ties": TIES_VERSION, "file": True}


def table_rows(args: argparse.Namespace, found: dict[str, Any]) -> list[dict[str, Any]]:
    """Each asked architecture's row: exported (or from the cache), then measured."""
    rows = []
    for name in args.models or found:
        json_path, tflite = args.cache / f"{name}.json", args.cache / f"{name}.tflite"
        result = cached_row(args.cache, name, args)
        print(f"{name} ..." + (" (cached)" if result else ""), flush=True)
        exported = result is None
        if exported:
            result = exported_row(name, found[name], args.size, tflite)
        measured = "error" not in result and measure(result, tflite, args)
        if exported or measured:
            args.cache.mkdir(parents=True, exist_ok=True)
            entry = {"settings": _settings(args), "row": result}
            json_path.write_text(json.dumps(entry, indent=1))
        rows.append(result)
        print(f"  {result}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", nargs="*", help="default: every architecture")
    parser.add_argument("--latency", type=int, default=0, metavar="RUNS",
                        help="also time each model this many interleaved runs")  # fmt: skip
    parser.add_argument(
        "--aarch64",
        nargs="*",
        metavar="MODEL",
        help="count these models' instructions under qemu-aarch64 (minutes)",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="per-model rows (resume)")
    parser.add_argument("--fresh", action="store_true", help="re-export cached rows")
    parser.add_argument("--retime", action="store_true",
                        help="time cached rows again (with --latency; no re-export)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help=f"e.g. {RESULTS}")
    args = parser.parse_args()
    found = architectures()
    unknown = sorted((set(args.models or []) | set(args.aarch64 or [])) - set(found))
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}; choose from {sorted(found)}")
    rows = table_rows(args, found)
    body = markdown(rows, args.size)
    title = "larq-zoo architectures exported by bitlite"
    print(write_table(args.out, title, body) if args.out else body)


if __name__ == "__main__":
    main()

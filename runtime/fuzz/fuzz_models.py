"""Model-level fuzzer: mutated .tflite files through a real TFLite interpreter (LiteRT,
tflite-runtime or tf.lite) with bitlite's delegate — in the sanitized run, the ASan +
UBSan build of libbitlite_delegate.so with the sanitizer runtimes preloaded.

Each execution takes a seed model (LCE-converted models and hand-built ones, written by
runtime/fuzz/seeds.py), applies 1-4 mutations — a tensor's shape, type, buffer (cut,
grown, swapped, dropped), sparsity, quantization; an op's custom options (bytes or
values), input/output indices or opcode; now and then raw bytes of the packed file — and
runs it as an app loads an untrusted model: bitlite_runtime.Interpreter (its model
check, then the host's interpreter with the delegate, XNNPACK on or off), invoke on
random inputs, read the outputs. Execution i is a pure function of (--seed, i), so
`--replay i` rebuilds it. Worker protocol (benchmarks/fuzz.py drives it): before each
execution the model is written to --current; every --report executions one line
"done N ran R malformed M refused F ..." (the counts of OUTCOMES) goes to stdout; the
process dies on a sanitizer report, and the driver then saves --current.

    python runtime/fuzz/fuzz_models.py --seeds DIR --start 0 --count 1000 --current cur.tflite
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT))

import flatbuffers  # noqa: E402
from flatbuffers import flexbuffers  # noqa: E402

from pipeline.tflite.reader import TFLITE_MAGIC, schema  # noqa: E402
from pipeline.tflite.rewrite import _aligned_buffer_class, load  # noqa: E402

OURS = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "BitliteDecodeWeights"}
DIMS = (0, 1, 2, 3, 7, 8, 9, 31, 32, 33, 64, 4096, -1, -7, 2**31 - 1, 2**20, 2**16 + 1)
TYPES = (0, 2, 3, 4, 6, 7, 9, 1)  # FLOAT32 INT32 UINT8 INT64 BOOL INT16 INT8 FLOAT16
SCALES = (0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e30, 0.5, 2.0**-7)
ZERO_POINTS = (0, 127, -128, 128, -129, 2**31 - 1, -(2**31), 2**40, 3)
OPTION_VALUES = (0, 1, 2, 3, 4, -1, 5, 31, 32, 33, 64, 2**20, 2**31 - 1, -(2**31), 2**40)
MAX_INPUT_BYTES = 16 << 20  # larger inputs: constructed and allocated, not invoked
OUTCOMES = ("ran", "malformed", "refused", "invoke_error", "bitlite_invoke_error", "too_large")


class _SeedBuilder(flatbuffers.Builder):
    """A builder that starts from a seed's snapshot (Builder has __slots__)."""

    __slots__ = ("seed_offsets", "dirty")


@functools.cache
def _cached_class(cls: type) -> type:
    """`cls` (a table of the object API) whose Pack returns the offset at which the
    seed's snapshot already holds it, unless the builder marks it changed."""

    class Cached(cls):
        def Pack(self, builder) -> int:  # noqa: N802  (flatc's method name)
            offsets = getattr(builder, "seed_offsets", None)
            if offsets is not None and id(self) in offsets and id(self) not in builder.dirty:
                return offsets[id(self)]
            return super().Pack(builder)

    return Cached


class Seed:
    """A parsed seed model, where its interesting parts are, and a snapshot of its
    packed tables: packing a mutant re-packs only the tables its mutations changed
    (re-packing every tensor and buffer was most of an execution's time)."""

    def __init__(self, content: bytes):
        self.content = content
        self.model = load(content)
        graph = self.model.subgraphs[0]
        names = [c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
                 for c in self.model.operatorCodes]
        self.opcodes = [i for i, n in enumerate(names) if n in OURS]
        self.ours = [op for op in graph.operators if op.opcodeIndex in self.opcodes]
        touched = {i for op in self.ours for i in [*op.inputs, *op.outputs] if i >= 0}
        self.tensors = sorted(touched) or list(range(len(graph.tensors)))
        self._snapshot()

    def _tables(self) -> list:
        """The tables a mutation may change (and those it never does), below the
        model and its subgraphs, which are always packed anew."""
        m = self.model
        tables = [*(m.buffers or []), *(m.operatorCodes or []), *(m.signatureDefs or []),
                  *(m.metadata or [])]
        for graph in m.subgraphs or []:
            tables += [*(graph.tensors or []), *(graph.operators or [])]
        return tables

    def _snapshot(self) -> None:
        for buf in self.model.buffers or []:  # 16-byte aligned data, as rewrite.pack
            buf.__class__ = _aligned_buffer_class()
        builder = flatbuffers.Builder(1 << 16)
        self.offsets = {id(t): t.Pack(builder) for t in self._tables()}
        for t in self._tables():
            t.__class__ = _cached_class(type(t))
        self.tail = bytes(builder.Bytes[builder.head:])
        self.minalign, self.vtables = builder.minalign, dict(builder.vtables)

    def pack(self, changed: set[int]) -> bytes:
        """The model as mutated: tables whose id is in `changed` packed anew, the rest
        referenced in the snapshot, which ends the new buffer (flatbuffer offsets are
        relative, and a builder writes back to front)."""
        builder = _SeedBuilder(0)
        headroom = 4096 + 64 * len(self.offsets)
        builder.Bytes = bytearray(headroom) + self.tail
        builder.head = headroom
        builder.minalign, builder.vtables = self.minalign, dict(self.vtables)
        builder.seed_offsets, builder.dirty = self.offsets, changed
        builder.Finish(self.model.Pack(builder), file_identifier=TFLITE_MAGIC)
        return bytes(builder.Output())


class Undo:
    """Attribute assignments to restore after packing (the seed's tree is reused)."""

    def __init__(self):
        self.log: list[tuple[object, str, object]] = []

    def set(self, obj, attr: str, value) -> None:
        self.log.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    def restore(self) -> None:
        for obj, attr, old in reversed(self.log):
            setattr(obj, attr, old)
        self.log.clear()


def _buffer_bytes(buf) -> bytes:
    return b"" if buf.data is None else np.asarray(buf.data, np.uint8).tobytes()


def dense_sparsity(shape: tuple[int, ...]):
    """Sparsity metadata that TFLite accepts: every dimension DENSE. TFLite then skips its
    check that a constant's buffer holds every element (the hostile-model tests use it)."""
    s = schema()
    sp = s.SparsityParametersT()
    sp.traversalOrder = list(range(len(shape)))
    sp.dimMetadata = []
    for d in shape:
        m = s.DimensionMetadataT()
        m.format, m.denseSize = s.DimensionType.DENSE, max(int(d), 0)
        sp.dimMetadata.append(m)
    return sp


def mutate_tensor(seed: Seed, rng: random.Random, undo: Undo) -> None:
    graph = seed.model.subgraphs[0]
    t = graph.tensors[rng.choice(seed.tensors)]
    kind = rng.randrange(6)
    shape = list(t.shape if t.shape is not None else [])
    if kind == 0 and shape:  # one dimension
        shape[rng.randrange(len(shape))] = rng.choice(DIMS)
        undo.set(t, "shape", shape)
    elif kind == 1:  # rank
        undo.set(t, "shape", shape[:-1] if shape and rng.random() < 0.5 else shape + [1])
    elif kind == 2:
        undo.set(t, "type", rng.choice(TYPES))
    elif kind == 3:  # the buffer: cut, grown, another one, none, out of range
        buffers = seed.model.buffers
        choice = rng.randrange(4)
        if choice == 0 and 0 < t.buffer < len(buffers):
            data = _buffer_bytes(buffers[t.buffer])
            cut = data[: rng.randrange(len(data) + 1)] if rng.random() < 0.7 else data + bytes(8)
            undo.set(buffers[t.buffer], "data", np.frombuffer(cut, np.uint8) if cut else None)
        elif choice == 1:
            undo.set(t, "buffer", rng.randrange(len(buffers)))
        elif choice == 2:
            undo.set(t, "buffer", 0)
        else:
            undo.set(t, "buffer", len(buffers) + rng.randrange(3))
    elif kind == 4:  # sparse, with its buffer cut to 4 bytes
        undo.set(t, "sparsity", dense_sparsity(shape))
        if 0 < t.buffer < len(seed.model.buffers) and rng.random() < 0.7:
            buf = seed.model.buffers[t.buffer]
            undo.set(buf, "data", np.frombuffer(_buffer_bytes(buf)[:4] or bytes(4), np.uint8))
    else:  # quantization: per tensor or per channel, any scale and zero point
        q = schema().QuantizationParametersT()
        n = 1 if rng.random() < 0.7 else rng.randrange(2, 5)
        q.scale = [rng.choice(SCALES) for _ in range(n)]
        q.zeroPoint = [rng.choice(ZERO_POINTS) for _ in range(n)]
        q.quantizedDimension = rng.randrange(max(len(shape), 1))
        undo.set(t, "quantization", q)


def _mutate_option_value(options: bytes, rng: random.Random) -> bytes | None:
    """The FlexBuffer map `options` with one value changed or dropped; None when the
    bytes do not read as a map, or the map does not serialize again: flexbuffers' own
    reader and writer fail on what earlier byte mutations leave (a float beyond float32,
    keys it reads back unsorted), and that is the harness's failure, not the runtime's
    (it killed the worker once and was counted as a crash)."""
    try:
        values = flexbuffers.Loads(options)
        if not isinstance(values, dict) or not values:
            return None
        key = rng.choice(sorted(values))
        if rng.random() < 0.15:
            values.pop(key)
        else:
            values[key] = rng.choice(OPTION_VALUES)
        return bytes(flexbuffers.Dumps(values))
    except Exception:  # noqa: BLE001  (any failure of the library: mutation rejected)
        return None


def mutate_op(seed: Seed, rng: random.Random, undo: Undo) -> None:
    graph = seed.model.subgraphs[0]
    op = rng.choice(seed.ours or graph.operators)
    kind = rng.randrange(5)
    options = b"" if op.customOptions is None else np.asarray(op.customOptions, np.uint8).tobytes()
    if kind == 0 and options:  # option values, through the FlexBuffer map
        mutated = _mutate_option_value(options, rng)
        if mutated is not None:
            undo.set(op, "customOptions", list(mutated))
    elif kind == 1 and options:  # option bytes
        b = bytearray(options)
        if rng.random() < 0.3:
            b = b[: rng.randrange(len(b))]
        else:
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        undo.set(op, "customOptions", list(b))
    elif kind == 2:  # an input index: absent, another tensor, out of range, or a count change
        ins = [int(i) for i in op.inputs]
        r = rng.random()
        if r < 0.15:
            ins = ins[:-1]
        elif r < 0.25:
            ins = ins + [rng.randrange(len(graph.tensors))]
        elif ins:
            ins[rng.randrange(len(ins))] = rng.choice(
                [-1, rng.randrange(len(graph.tensors)), len(graph.tensors)])
        undo.set(op, "inputs", ins)
    elif kind == 3:  # the output: another tensor (an input, a constant), or none
        outs = [rng.randrange(len(graph.tensors))] if rng.random() < 0.9 else []
        undo.set(op, "outputs", outs)
    else:  # another of our ops (or any opcode) on the same tensors
        pool = seed.opcodes if rng.random() < 0.8 else range(len(seed.model.operatorCodes))
        undo.set(op, "opcodeIndex", rng.choice(list(pool)))


def make_model(seeds: list[Seed], weights: list[float], seed: int, index: int) -> bytes:
    """Execution `index`'s model: a pure function of (seed, index)."""
    rng = random.Random(seed * 1_000_003 + index)
    s = rng.choices(seeds, weights)[0]
    if rng.random() < 0.03:  # the seed itself: valid models must keep running
        return s.content
    undo = Undo()
    try:
        for _ in range(rng.randrange(1, 5)):
            (mutate_tensor if rng.random() < 0.6 else mutate_op)(s, rng, undo)
        try:
            content = s.pack({id(obj) for obj, _, _ in undo.log})
        except (struct.error, OverflowError, ValueError, TypeError):
            content = s.content  # a value the object API cannot serialize (e.g. 2^40 dims)
    finally:
        undo.restore()
    if rng.random() < 0.1:  # raw bytes anywhere: the host's verifier and parser
        b = bytearray(content)
        for _ in range(rng.randrange(1, 9)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        content = bytes(b)
    return content


def random_input(detail: dict, rng: np.random.Generator) -> np.ndarray | None:
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if any(d < 0 for d in shape) or np.prod(shape, dtype=np.float64) * dtype.itemsize > MAX_INPUT_BYTES:
        return None
    if dtype.kind == "f":
        x = rng.normal(0, 1, shape).astype(dtype)
        x.flat[::7] = 0.0
        return x
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -(2**31)), min(info.max, 2**31 - 1), shape,
                        endpoint=True).astype(dtype)


def run_model(content: bytes, host: str | None, rng: np.random.Generator) -> str:
    """One execution, as an app loads an untrusted model: bitlite_runtime.Interpreter
    (its structural model check, then the host's interpreter with bitlite's delegate),
    random inputs, invoke, outputs. 'ran'; 'malformed' (refused by the model check) or
    'refused' (by the host's parser or bitlite's prepare): the expected outcomes of most
    mutations; 'invoke_error' or 'bitlite_invoke_error' (one of our ops failed at
    invoke: a finding, since prepare must refuse what invoke cannot run); 'too_large'."""
    from bitlite_runtime import Interpreter, RuntimeModelError
    from bitlite_runtime.model_check import MALFORMED

    try:
        interpreter = Interpreter(content, num_threads=int(rng.integers(1, 3)),
                                  xnnpack=bool(rng.random() < 0.8), host=host)
    except RuntimeModelError as e:
        return "malformed" if str(e).startswith(MALFORMED) else "refused"
    inputs = []
    for detail in interpreter.input_details:
        x = random_input(detail, rng)
        if x is None:
            return "too_large"
        inputs.append(x)
    try:
        interpreter.invoke(inputs)
    except (ValueError, RuntimeError) as e:
        text = str(e)
        return "bitlite_invoke_error" if any(n in text for n in (*OURS, "bitlite")) else "invoke_error"
    return "ran"


def load_seeds(folder: Path) -> tuple[list[Seed], list[float]]:
    seeds = [Seed(p.read_bytes()) for p in sorted(folder.glob("*.tflite"))]
    if not seeds:
        raise SystemExit(f"error: no seed models (*.tflite) in {folder}")
    # Packing a mutated model costs in proportion to its tensors (most of an execution's
    # time): pick small models more often, the big LCE matrices now and then.
    weights = [max(len(s.model.subgraphs[0].tensors), 8) ** -0.7 for s in seeds]
    return seeds, weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--current", type=Path, help="each model is written here first")
    parser.add_argument("--report", type=int, default=500)
    parser.add_argument("--host", default=None, help="litert | tflite_runtime | tensorflow")
    parser.add_argument("--replay", type=int, help="write execution N's model to --current")
    args = parser.parse_args(argv)
    seeds, weights = load_seeds(args.seeds)
    if args.replay is not None:
        args.current.write_bytes(make_model(seeds, weights, args.seed, args.replay))
        return 0
    counts = dict.fromkeys(OUTCOMES, 0)
    with open(args.current, "wb") if args.current else contextlib.nullcontext() as current:
        for n, i in enumerate(range(args.start, args.start + args.count), 1):
            content = make_model(seeds, weights, args.seed, i)
            if current is not None:  # the model under test, left there if a sanitizer kills us
                current.seek(0)
                current.write(content)
                current.truncate()
                current.flush()
            counts[run_model(content, args.host, np.random.default_rng(i))] += 1
            if n % args.report == 0 or n == args.count:
                print(f"done {n} " + " ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

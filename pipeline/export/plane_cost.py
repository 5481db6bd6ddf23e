"""Which plane encoding a k-bit layer runs cheaper with (issue 16): a cost model.

A layer whose input takes ``n`` uniform levels (codes ``m = 0 … n−1``) can be cut into
±1 planes two ways, both exact (:mod:`pipeline.export.keras_rewrite`):

- ``binary``: the ``k = ⌈log2 n⌉`` bits of ``m``, weighted ``2^i``. Each plane needs its
  own binary product, so the planes are stacked on the batch axis through one
  ``LceBconv2d`` and its ``k`` outputs are scaled and summed afterwards;
- ``thermometer``: the ``n − 1`` equal-weight planes ``[m ≥ t]``. Equal weights let the
  planes sit side by side on the channel axis: ONE product with an ``(n−1)``-times longer
  reduction, whose scales fold into the op's per-channel multiplier.

Binary planes do fewer XOR-popcounts when ``n > k + 1`` (k = 2: 2 planes against 3), but
every plane's output is a float tensor that is converted, scaled and added, and the
input side cuts k planes with more elementwise ops. Which is cheaper depends on the shape:
with few input channels (one 32-bit word per tap either way) thermometer planes cost no
more popcounts and save all the output work; with many channels and 15 thermometer
planes (4 bits), the popcounts dominate.

Costs are estimated aarch64 instructions per image. The weights were fitted (least
squares on the binary − thermometer differences) to guest instruction counts of seven
single k-bit layers under qemu-aarch64, LeNet-5's and VGG-8's shapes among them
(``python -m benchmarks.kbit --encodings --aarch64``, ``benchmarks/results/
kbit_encodings.md``): a packed 32-bit word of a binary product costs about a third of an
instruction (NEON reduces four at a time), while every float output element of a product
costs ~60 and every input element of a bit plane ~60 (thermometer ~11) — so the plane
count's effect on the popcounts matters far less than the output and input work, and the
first fit (costs in popcount units, outputs and inputs at 6) picked the slower encoding
for 5 of those 7 layers.

Size: thermometer planes store the kernel once per plane (it repeats along the longer
reduction), ``n − 1`` times the bits of bit planes. :func:`fit_size` keeps the model's
k-bit kernels within :data:`SIZE_BUDGET` times their bit planes stored once, switching
to bit planes the layers that save the most stored bits per estimated instruction lost
(issue 16's size goals: 1/16 of float32 for binary weights, 1/10 for 2-bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ENCODINGS = ("binary", "thermometer")
WORD_BITS = 32  # LCE bitpacks channels into int32 words
# aarch64 instructions, fitted (see above). One packed 32-bit word of one binary product:
POPCOUNT_COST = 0.34
# One output element of one product: the float transform in the kernel, then the scale,
# plane sum and channel slices as separate elementwise ops (read + write each).
OUTPUT_COST = 60.0
# One input element of one plane: the elementwise ops that cut it, then bitpacking.
# binary: round, scale, floor, mod, subtract, concat; thermometer: concat, subtract.
INPUT_COST = {"binary": 59.0, "thermometer": 11.0}
# The k-bit layers' stored kernels may take at most this many times the bits of their
# weight planes stored once (binary weights: 2 bits per weight, 1/16 of float32).
SIZE_BUDGET = 2.0


@dataclass(frozen=True)
class LayerShape:
    """What the cost of a k-bit layer's binary products depends on (per image)."""

    channels_in: int  # C_in of the layer (a dense layer: its input features)
    taps: int  # kernel height × width (dense: 1)
    filters: int  # filters of the binary convolution: J·C (+ 1 for the all-ones filter)
    positions_in: int  # input height × width (dense: 1)
    positions_out: int  # output height × width (dense: 1)
    levels: int  # n: levels of the input's grid

    @property
    def bits(self) -> int:
        return max(1, (self.levels - 1).bit_length())


def planes(shape: LayerShape, encoding: str) -> int:
    """±1 planes the input is cut into."""
    return shape.bits if encoding == "binary" else shape.levels - 1


def cost(shape: LayerShape, encoding: str) -> float:
    """Estimated aarch64 instructions per image."""
    p = planes(shape, encoding)
    products = p if encoding == "binary" else 1  # separate products (batch) or one
    width = shape.channels_in * (1 if encoding == "binary" else p)  # reduction channels
    words = -(-width // WORD_BITS)
    popcounts = products * shape.positions_out * shape.filters * shape.taps * words
    outputs = products * shape.positions_out * shape.filters * OUTPUT_COST
    inputs = p * shape.positions_in * shape.channels_in * INPUT_COST[encoding]
    return float(popcounts * POPCOUNT_COST + outputs + inputs)


def choose(shape: LayerShape, allowed: Sequence[str] = ENCODINGS) -> tuple[str, dict[str, float]]:
    """(the cheaper of ``allowed``, each one's estimated cost); ties go to ``binary``."""
    costs = {e: cost(shape, e) for e in allowed}
    return min(allowed, key=lambda e: (costs[e], ENCODINGS.index(e))), costs


def kernel_bits(shape: LayerShape, encoding: str) -> int:
    """Bits of the binary kernel as stored: thermometer planes repeat it once per plane."""
    repeat = 1 if encoding == "binary" else planes(shape, "thermometer")
    return shape.filters * shape.taps * shape.channels_in * repeat


@dataclass(frozen=True)
class Pick:
    """One k-bit layer's options for :func:`fit_size`."""

    name: str
    encoding: str  # the cheaper by :func:`choose`
    costs: dict[str, float]  # estimated instructions by encoding
    bits: dict[str, int]  # stored kernel bits by encoding (:func:`kernel_bits`)


def fit_size(picks: Sequence[Pick], budget: float = SIZE_BUDGET) -> dict[str, str]:
    """Each layer's encoding (name -> encoding) with the stored kernels within ``budget``
    times their bit planes stored once: starting from the cheaper encodings, the layers
    that save the most bits per estimated instruction lost switch to bit planes."""
    chosen = {p.name: p.encoding for p in picks}
    limit = budget * sum(p.bits["binary"] for p in picks)

    def stored() -> int:
        return sum(p.bits[chosen[p.name]] for p in picks)

    while stored() > limit:
        movable = [p for p in picks if chosen[p.name] != "binary" and "binary" in p.costs]
        if not movable:
            break

        def lost_per_bit(p: Pick) -> float:
            saved = p.bits[chosen[p.name]] - p.bits["binary"]
            return (p.costs["binary"] - p.costs[chosen[p.name]]) / max(saved, 1)

        chosen[min(movable, key=lost_per_bit).name] = "binary"
    return chosen

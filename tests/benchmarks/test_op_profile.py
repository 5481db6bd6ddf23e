"""benchmarks.op_profile: an invoke split at the delegate's op records, the stretches
between them named after the host's ops that ran there."""

from __future__ import annotations

import numpy as np

from benchmarks.op_profile import report


def _rows(text: str) -> dict[str, float]:
    rows = {}
    for line in text.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = float(cells[1])
    return rows


def test_report_attributes_each_stretch_of_the_inner_invoke():
    # Two inner invokes (t2..t3), ns; our nodes 1 and 3, host ops 0 and 2 and 4, 5.
    invokes = np.array([[0, 9_000, 10_000, 110_000, 112_000],
                        [200_000, 209_000, 210_000, 330_000, 334_000]])
    spans = {
        # The wrapper's invoke (t0..t1) records come first and must be skipped.
        (1, "LceQuantize"): [(1_000, 2_000), (20_000, 25_000), (201_000, 202_000),
                             (220_000, 225_000)],
        (3, "LceBconv2d"): [(3_000, 4_000), (30_000, 90_000), (203_000, 204_000),
                            (230_000, 290_000)],
    }
    between = {1: ["CONV_2D"], 3: ["RESHAPE"], 6: ["SOFTMAX", "ADD"]}
    rows = _rows(report(between, invokes, spans))
    assert rows["host: CONV_2D"] == 10.0  # 10_000 -> 20_000 and 210_000 -> 220_000
    assert rows["node 1 LceQuantize"] == 5.0
    assert rows["host: RESHAPE"] == 5.0
    assert rows["node 3 LceBconv2d"] == 60.0
    assert rows["host: SOFTMAX, ADD + invoke return"] == 30.0  # 20 and 40 us
    assert rows["**our ops, sum of medians**"] == 65.0
    assert rows["**host invoke (inner)**"] == 110.0  # 100 and 120 us
    assert rows["get_tensor of the outputs (host)"] == 3.0
    assert rows["**bitlite_runtime.Interpreter.invoke (the wrapper, all of it)**"] == 9.0

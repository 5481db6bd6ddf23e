"""benchmarks.zoo: a larq-zoo architecture exports, runs on bitlite's runtime and keeps
Keras' logits (issue 17). Needs larq-zoo (``pip install --no-deps -r .ci/zoo.txt``)."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)

lqz = pytest.importorskip(
    "larq_zoo", reason="larq-zoo is not installed (pip install --no-deps -r .ci/zoo.txt)"
)

from benchmarks import zoo  # noqa: E402
from pipeline.export.ties import sign_layers  # noqa: E402

# QuickNetSmall at 32×32: every kind of layer the 224×224 model has (blur-pool stem,
# binary 3×3 convolutions with ±1 padding, transitions), in seconds instead of minutes.
SIZE = 32


def test_both_modules_are_listed():
    found = zoo.architectures()
    assert {"QuickNetSmall", "QuickNet", "BiRealNet", "XNORNet", "DoReFaNet"} <= set(found)
    assert set(lqz.sota.__all__) | set(lqz.literature.__all__) == set(found)


def test_small_quicknet_exports_bitpacked_with_keras_logits(tmp_path):
    model = zoo.build(lqz.sota.QuickNetSmall, SIZE)  # seeded: the same weights every run
    row = zoo.export_row("QuickNetSmall", model, tmp_path)
    assert "error" not in row, row.get("error")
    assert row["converter"] == "lce+rewrite" and not row["fallbacks"]
    assert row["compared"] == "logits"  # not the saturated softmax
    # Strict parity is measured on both, but not required: a float32 rounding tie at one
    # sign() moves random logits by percents (it failed so on some unseeded weights);
    # the tie-aware check below is the one that must hold.
    assert set(row["parity"]) == {"lce", "bitlite"}
    assert row["binary_macs"] > 0.5  # at 32×32 the float stem weighs more than at 224
    assert row["vs_smallest"] < 1.2  # graph overhead is larger on a small model too
    flatbuffer = (tmp_path / "model.tflite").read_bytes()
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    row["ties"] = zoo.tie_rows(model, flatbuffer, x, ["lce", "bitlite"])
    for tie in row["ties"].values():  # every sign layer found, read back, and agreeing
        assert tie["layers"] == tie["layers_found"] == 16
        assert tie["beyond"] == 0 and tie["relative_diff"] <= 1e-3
    # a real discrepancy (one batch norm's sign flipped in Keras after conversion) must
    # show as signs that differ away from 0 and logits over the goal, ties or not
    first = model.get_layer(next(iter(sign_layers(model))))
    norm = first.outbound_nodes[0].outbound_layer
    norm.set_weights([-w if i < 2 else w for i, w in enumerate(norm.get_weights())])
    for tie in zoo.tie_rows(model, flatbuffer, x, ["lce", "bitlite"]).values():
        assert tie["beyond"] > 0 and tie["relative_diff"] > 1e-2
    table = zoo.markdown([row, {"model": "Broken", "error": "converter crashed"}], SIZE)
    assert (
        "| QuickNetSmall | lce+rewrite |" in table
        and "| Broken | failed: converter crashed |" in table
    )
    # only strict columns over the goal say so (seed 0 has a tie: both do); tie-aware ones pass
    strict_over = sum(v > 1e-3 for v in row["parity"].values())
    assert table.count("(over the goal)") == strict_over


def test_cached_rows_are_timed_from_their_file_without_re_exporting(tmp_path, monkeypatch):
    exports, timed = [], []

    def fake_export(name, builder, size, keep):
        exports.append(name)
        keep.write_bytes(b"tflite of " + name.encode())
        return {"model": name, "mb": 1.0}

    def fake_latency(flatbuffer, x, runs):
        timed.append((flatbuffer, x.shape, runs))
        return {"bitlite avx512": float(len(timed))}

    monkeypatch.setattr(zoo, "exported_row", fake_export)
    monkeypatch.setattr(zoo, "latency_ms", fake_latency)
    found = {"A": None, "B": None}

    def rows(*flags):
        args = zoo.argparse.Namespace(size=8, models=None, latency=0, aarch64=None,
                                      cache=tmp_path, fresh=False, retime=False)  # fmt: skip
        for flag in flags:
            setattr(args, *flag)
        return zoo.table_rows(args, found)

    assert [r["mb"] for r in rows()] == [1.0, 1.0] and exports == ["A", "B"] and not timed
    timed_rows = rows(("latency", 3))  # the cached file is timed; nothing re-exported
    assert exports == ["A", "B"]
    assert timed == [(b"tflite of A", (1, 8, 8, 3), 3), (b"tflite of B", (1, 8, 8, 3), 3)]
    assert [r["ms"]["bitlite avx512"] for r in timed_rows] == [1.0, 2.0]
    assert [r["ms"]["bitlite avx512"] for r in rows(("latency", 3))] == [1.0, 2.0]  # kept
    assert [r["ms"]["bitlite avx512"] for r in rows(("latency", 3), ("retime", True))] == [3.0, 4.0]
    assert exports == ["A", "B"]
    (tmp_path / "B.tflite").unlink()  # a row whose file is gone is exported again
    rows(("latency", 3))
    assert exports == ["A", "B", "B"]
    rows(("fresh", True))
    assert exports == ["A", "B", "B", "A", "B"]


def test_build_gives_the_same_weights_every_time():
    """A re-export (--fresh) must rebuild the table's exact models, not new random ones."""
    a = [w.copy() for w in zoo.build(lqz.sota.QuickNetSmall, SIZE).get_weights()]
    b = zoo.build(lqz.sota.QuickNetSmall, SIZE).get_weights()
    assert len(a) == len(b) > 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(np.std(x) > 0 for x in a)  # random, not all constant

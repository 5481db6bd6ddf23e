"""``python -m pipeline.export --kbit-fused`` (issue 16): a DoReFa W1A2 LeNet-5 run's k-bit
layers on bitlite's fused ops, the report and tools.inspect saying which and what the file
needs, parity on bitlite_runtime alone, and outputs equal, bit for bit, to the portable
thermometer export the ops were fused from; runs with nothing to fuse are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline.errors import UsageError

tf = pytest.importorskip("tensorflow")
lq = pytest.importorskip("larq")

FUSED_OPS = ["BitliteKbitBconv2d", "BitliteKbitQuantize"]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def on_checkout_runtime(checkout_runtime, monkeypatch_module):
    """Parity on this checkout's runtime (its k-bit ops), not an older installed one."""
    from pipeline.export import exporter as export

    def predict(flatbuffer, x, progress=False):
        return np.asarray(checkout_runtime.Interpreter(flatbuffer).predict(x), np.float32)

    monkeypatch_module.setattr(export, "bitlite_predict", predict)
    monkeypatch_module.setitem(export.INTERPRETERS, export.BITLITE,
                               (predict, "bitlite_runtime (checkout)"))  # fmt: skip
    return export


@pytest.fixture(scope="module")
def fused_export(tmp_path_factory, on_checkout_runtime, monkeypatch_module):
    """(run, report, the portable thermometer flatbuffer the ops were fused from)."""
    from pipeline.tflite import kbit_chains
    from pipeline.train.trainer import TrainConfig, train

    tf.keras.backend.clear_session()  # layer names (quant_conv2d_1) whatever ran before
    config = TrainConfig(method="dorefa", epochs=1, train_samples=256, test_samples=100,
                         batch_size=64)  # fmt: skip
    run = train(config, out=tmp_path_factory.mktemp("runs") / "dorefa", progress=False)
    portable = []
    original = kbit_chains.fuse_kbit

    def spy(flatbuffer):
        portable.append(flatbuffer)
        return original(flatbuffer)

    monkeypatch_module.setattr(kbit_chains, "fuse_kbit", spy)
    report = on_checkout_runtime.export_run(run, baselines=(), fused=True)
    monkeypatch_module.setattr(kbit_chains, "fuse_kbit", original)
    return run, report, portable[0]


def test_report_names_each_fused_layer_and_the_ops_the_file_needs(fused_export):
    run, report, _ = fused_export
    # LeNet-5's k-bit layers: conv2 and dense1, each from float (a flatten lies before
    # dense1), 2 bit planes in, float out; DoReFa's first and last layers stay float
    assert [(f["layer"], f["fused"], f["input"], f["planes_in"], f["output"], f["planes_out"],
             f["pool_fused"]) for f in report["kbit_fused"]] == [
        ("quant_conv2d_1", True, "float", 2, "float", 0, False),
        ("quant_dense", True, "float", 2, "float", 0, False),
    ]  # fmt: skip
    assert report["bitlite_ops"] == FUSED_OPS == report["custom_ops"]
    assert report["needs_bitlite_runtime"] and not report["needs_lce"]
    assert list(report["parity"]) == ["bitlite"] and report["parity_ok"]
    assert report["argmax_agreement"] == 1.0
    planned = [p for p in report["layers"] if p["action"] == "planes->bconv"]
    assert [(p["encoding"], p["why_encoding"][:12]) for p in planned] == [
        ("thermometer", "--kbit-fused")] * 2  # fmt: skip
    md = run.file("export_report.md").read_text()
    assert "| quant_conv2d_1 | yes | float | 2 | float | – | no |  |" in md
    assert "needs bitlite_runtime only (custom ops BitliteKbitBconv2d (" in md
    assert json.loads(run.file("model.json").read_text())["needs_bitlite_runtime"] is True


def test_fused_file_matches_the_portable_export_bit_for_bit(fused_export, checkout_runtime):
    from pipeline import data, runs
    from pipeline.export.exporter import test_data
    from pipeline.tflite.reader import read_model

    run, _, portable = fused_export
    fused = run.file(runs.TFLITE).read_bytes()
    before = read_model(portable)
    assert "LceBconv2d" in before.op_counts() and not before.bitlite_ops()
    x = data.normalize(test_data(run).x_test)
    ours = checkout_runtime.Interpreter(fused).predict(x)
    twin = checkout_runtime.Interpreter(portable).predict(x)
    assert np.unique(twin.argmax(-1)).size > 1  # not a constant prediction
    np.testing.assert_array_equal(ours, twin)
    assert (ours.argmax(-1) == twin.argmax(-1)).all()
    assert len(fused) < len(portable)  # each binary filter stored once, not 3 times


def test_inspect_names_the_fused_ops_and_the_requirement(fused_export):
    from pipeline import runs
    from tools.inspect import inspect

    run, report, _ = fused_export
    info = inspect(run.file(runs.TFLITE).read_bytes())
    assert info["interpreter"].startswith("needs bitlite_runtime: custom ops BitliteKbitBconv2d (")
    assert all(op in info["interpreter"] for op in FUSED_OPS)
    fused = [p for p in info["binary_products"] if p["encoding"] == "fused"]
    assert [(p["planes"], p["filters"], p["output"]) for p in fused] == [
        (2, 64, "float"), (2, 512, "float")]  # fmt: skip
    # every binary product counted: 2 planes × the layer's MACs (conv2: 8×8 outputs × 64
    # filters × 5×5×32; dense1: 512 × 1024)
    assert [p["macs"] for p in fused] == [2 * 64 * 64 * 25 * 32, 2 * 512 * 1024]
    assert info["macs"]["binary"] == sum(p["macs"] for p in fused) == report["macs"]["binary"]


def _fresh(tmp_path):
    return not any(tmp_path.iterdir()) if tmp_path.exists() else True


def _w1a1():
    x = inputs = tf.keras.Input((8, 8, 1))
    x = lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign")(x)
    x = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(x)))


def _float():
    x = inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Flatten()(tf.keras.layers.Conv2D(8, 3)(x))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))


@pytest.mark.parametrize("build", [_w1a1, _float], ids=["W1A1", "float"])
def test_nothing_to_fuse_is_refused_with_why_and_nothing_written(build, tmp_path,
                                                                 on_checkout_runtime):  # fmt: skip
    out = tmp_path / "export"
    with pytest.raises(UsageError, match="no layer has 2- to 4-bit activations.*nothing to fuse"):
        on_checkout_runtime.export_model(build(), out, baselines=(), fused=True)
    assert _fresh(out)


def test_bad_combinations_are_refused_before_any_work(fused_export, monkeypatch):
    from pipeline.export import exporter as export

    run, _, _ = fused_export
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
    with pytest.raises(UsageError, match="--kbit-fused files run only on bitlite_runtime; "
                                         "--interpreter lce cannot load them"):  # fmt: skip
        export.main(["--run", str(run.path), "--kbit-fused", "--interpreter", "lce"])
    others = {k: v for k, v in export.INTERPRETERS.items() if k != export.BITLITE}
    monkeypatch.setattr(export, "interpreters", lambda: others)
    with pytest.raises(UsageError, match="--pack-weights and --kbit-fused files run only on "
                                         "bitlite_runtime: install it"):  # fmt: skip
        export.export_run(run, pack=True, fused=True)
    assert UsageError.exit_code == 2
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before


def _chained():
    """Two DoReFa A2 layers, the first's output max-pooled into the second: the first
    writes the second's planes (pool inside the op), the second gives float."""
    bn = tf.keras.layers.BatchNormalization

    def kbit(filters: int, name: str):
        return lq.layers.QuantConv2D(
            filters, 3, padding="same", use_bias=False, kernel_quantizer="ste_sign", name=name,
            input_quantizer=lq.quantizers.DoReFa(k_bit=2, mode="activations"))  # fmt: skip

    x = inputs = tf.keras.Input((8, 8, 4))
    x = bn()(kbit(16, "k1")(bn()(tf.keras.layers.Conv2D(8, 1)(x))))
    x = bn()(kbit(8, "k2")(bn()(tf.keras.layers.MaxPool2D(2)(x))))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, bn):  # spread the activations over their 4 levels
            n = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0.4, 0.3, n),
                               rng.normal(0, 0.2, n), rng.uniform(0.2, 1, n)])  # fmt: skip
    return model


def test_a_chain_reports_planes_out_and_the_pool_inside(tmp_path, on_checkout_runtime):
    report = on_checkout_runtime.export_model(_chained(), tmp_path, baselines=(), fused=True)
    assert [(f["layer"], f["input"], f["planes_in"], f["output"], f["planes_out"],
             f["pool_fused"]) for f in report["kbit_fused"]] == [
        ("k1", "float", 2, "planes", 2, True), ("k2", "planes of k1", 2, "float", 0, False)
    ]  # fmt: skip
    assert report["parity_ok"] and list(report["parity"]) == ["bitlite"]
    assert "| k1 | yes | float | 2 | planes | 2 | yes |  |" in (
        tmp_path / "export_report.md").read_text()  # fmt: skip

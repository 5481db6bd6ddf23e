"""``python -m pipeline.export --pack-weights`` on a real (tiny) TWN run: ternary weights
stored as 2-bit codes, parity checked on bitlite_runtime alone, and the file's outputs
equal, bit for bit, those of the int8 export of the same conversion."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture(scope="module")
def packed_export(tmp_path_factory, checkout_runtime, monkeypatch_module):
    """(run, report, the raw converted flatbuffer) of a TWN LeNet-5 exported packed."""
    from pipeline.export import exporter as export
    from pipeline.tflite import rewrite as tflite_rewrite
    from pipeline.train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "twn-lenet5"
    config = TrainConfig(method="twn", epochs=1, train_samples=256, test_samples=100)
    run = train(config, out=out, progress=False)
    raw = []
    original = tflite_rewrite.int8_weights

    def spy(flatbuffer, **kwargs):
        raw.append(flatbuffer)
        return original(flatbuffer, **kwargs)

    monkeypatch_module.setattr(tflite_rewrite, "int8_weights", spy)
    # parity runs on the checkout's runtime (this branch's op), not an older installed one
    monkeypatch_module.setattr(export, "bitlite_predict", _checkout_predict(checkout_runtime))
    monkeypatch_module.setitem(
        export.INTERPRETERS, export.BITLITE, (export.bitlite_predict, "bitlite_runtime (checkout)")
    )
    report = export.export_run(run, pack=True)
    return run, report, raw[0]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _checkout_predict(module):
    def predict(flatbuffer, x, progress=False):
        return np.asarray(module.Interpreter(flatbuffer).predict(x), np.float32)

    return predict


def test_ternary_weights_export_as_2_bit_codes(packed_export):
    _, report, _ = packed_export
    ternary = [w for w in report["int8_weights"] if w["levels"] <= 3]
    assert ternary and {w["stored"] for w in ternary} == {"packed2"}
    packed = [w for w in report["weight_tensors"] if w["dtype"] == "packed2"]
    assert len(packed) == len(ternary)
    assert all(w["bits_per_weight"] == pytest.approx(2.0, abs=0.01) for w in packed)
    assert report["custom_ops"] == ["BitliteDecodeWeights"]
    assert report["needs_bitlite_runtime"] and not report["needs_lce"]
    assert list(report["parity"]) == ["bitlite"] and report["parity_ok"]
    assert report["argmax_agreement"] >= 0.999
    assert report["ratio_to_float"] > 4.0  # int8 caps at 4×


def test_packed_file_matches_the_int8_export_exactly(packed_export, checkout_runtime):
    from pipeline import data, runs
    from pipeline.export.exporter import test_data
    from pipeline.tflite.rewrite import int8_weights

    run, _, raw = packed_export
    packed_file = run.file(runs.TFLITE).read_bytes()
    int8_file, _ = int8_weights(raw)
    x = data.normalize(test_data(run).x_test)
    ours = checkout_runtime.Interpreter(packed_file, xnnpack=False).predict(x)
    twin = checkout_runtime.Interpreter(int8_file, xnnpack=False).predict(x)
    np.testing.assert_array_equal(ours, twin)
    assert len(packed_file) < len(int8_file) / 2


def test_reports_and_inspect_say_it_needs_bitlite_runtime(packed_export):
    import json

    from pipeline import runs
    from tools.inspect import inspect

    run, _, _ = packed_export
    assert "needs bitlite_runtime only" in run.file("export_report.md").read_text()
    assert json.loads(run.file("model.json").read_text())["needs_bitlite_runtime"] is True
    info = inspect(run.file(runs.TFLITE).read_bytes())
    assert info["interpreter"].startswith("needs bitlite_runtime")


def test_packed_export_bundles_into_the_android_demo_which_reads_that_it_needs_bitlite(
    packed_export, tmp_path
):
    # The demo adds bitlite's delegate (which claims BitliteDecodeWeights), so a packed
    # file is bundled like any other; the sidecar tells the app it needs the delegate.
    import json
    import shutil
    from pathlib import Path

    from pipeline import runs
    from pipeline.export import exporter as export

    run, _, _ = packed_export
    demo = Path(__file__).resolve().parents[3] / "android_demo"
    app = tmp_path / "android_demo"
    (app / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(demo / "app" / "src" / "main" / "AndroidManifest.xml", app / "app/src/main")
    export.copy_to_android(run, export.android_assets(app))
    assets = app / "app" / "src" / "main" / "assets"
    bundled = {p.suffix: p for p in assets.iterdir()}
    assert bundled[".tflite"].read_bytes() == run.file(runs.TFLITE).read_bytes()
    assert json.loads(bundled[".json"].read_text())["needs_bitlite_runtime"] is True

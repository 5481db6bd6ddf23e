"""benchmarks.xnnpack_kernels: which XNNPACK GEMM micro-kernels run a file, on which unit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.xnnpack_kernels import describe, probe, unit, units


def test_unit_reads_the_isa_suffix_of_both_name_styles():
    assert unit("xnn_qs8_qc8w_igemm_minmax_fp32_ukernel_16x64c4.avx512amx") == "AMX tiles"
    assert unit("xnn_qs8_qc8w_igemm_minmax_fp32_ukernel_7x16c8__avx512vnni_prfm") == "AVX-512 VNNI"
    assert unit("xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_1x16c8.avx512skx") == "AVX-512 (no VNNI)"
    assert unit("xnn_f32_igemm_minmax_ukernel_7x32.avx512f_broadcast") == "AVX-512"
    assert unit("xnn_qs8_gemm_ukernel_4x8c4__neondot") == "NEON dot product"
    assert unit("xnn_f32_gemm_ukernel_4x4__scalar") == "scalar C"
    assert unit("xnn_f32_gemm_ukernel_4x4__wasmsimd") == "wasmsimd"  # unknown: the tag itself
    assert units(["a.avx512amx", "b.avx512amx", "c__avx2"]) == ["AMX tiles", "AVX2"]


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv + dense net converted to full int8 (XNNPACK runs its GEMMs)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.layers.Input((16, 16, 8)),
        tf.keras.layers.Conv2D(32, 3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 16, 16, 8)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("xnnpack-probe") / "small_int8.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
@pytest.mark.parametrize("engine", ["litert", "tf"])
def test_probe_names_the_int8_gemms_that_ran(int8_file: Path, engine: str):
    found = probe(int8_file, engine)
    # A conv and a dense layer: XNNPACK's signed-int8 (qs8) GEMM or indirect GEMM.
    assert found and all(name.startswith("xnn_") for name in found)
    assert any(name.startswith(("xnn_qs8_", "xnn_qc8_")) for name in found), found
    assert all(unit(name) for name in found)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_probe_sees_nothing_for_a_file_without_gemms(tmp_path: Path):
    """A file of only an elementwise op: the breakpoints are set, none is hit."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Input((8,)), tf.keras.layers.ReLU()])
    path = tmp_path / "relu.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert probe(path, "litert") == []
    assert describe(path) == "no XNNPACK GEMM micro-kernel ran"


def test_describe_says_why_without_gdb(int8_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert describe(int8_file) == (
        "XNNPACK kernels not probed (gdb is not installed (apt-get install gdb))"
    )


def test_cli_refuses_what_is_not_a_tflite_file(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch):
    import sys

    from benchmarks import xnnpack_kernels

    bad = tmp_path / "notes.tflite"
    bad.write_text("not a model")
    for path, why in [(bad, "not a .tflite file"), (tmp_path / "gone", "no such file")]:
        monkeypatch.setattr(sys, "argv", ["xnnpack_kernels", str(path)])
        with pytest.raises(SystemExit) as stop:
            xnnpack_kernels.main()
        assert stop.value.code == 2
        assert why in capsys.readouterr().err


def test_child_error_is_the_child_exception_not_gdb_stop():
    from benchmarks.xnnpack_kernels import _child_error

    stderr = ("Traceback (most recent call last):\n  File \"child.py\", line 9\n"
              "ValueError: Model provided has model identifier 'xxxx', should be 'TFL3'\n\n"
              "gdb.error: The program is not being run.\n")
    assert _child_error(stderr).startswith("ValueError: Model provided")
    assert _child_error("just one line\n") == "just one line"
    assert _child_error("") == "?"

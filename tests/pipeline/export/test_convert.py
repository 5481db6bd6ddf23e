"""The conversion child: a crash or failure becomes a clear error or a fallback, never a
dead session. The parent's side is tested with stand-in children (no TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.export import convert

# A stand-in child: reads the job like the real one, crashes (SIGSEGV) on the strategies
# listed in argv[2], writes a fake flatbuffer for the others.
FAKE_CHILD = r"""
import json, os, signal, sys
from pathlib import Path
job = json.loads(Path(sys.argv[1]).read_text())
crash_on = sys.argv[2].split(",")
for item in job["items"]:
    out = Path(item["out"]); out.mkdir(parents=True, exist_ok=True)
    for name, how in item["tasks"]:
        if how in crash_on:
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "raise":
            raise RuntimeError("unsupported op in this model")
        (out / f"{name}.tflite").write_bytes(b"fake" + how.encode())
        (out / f"{name}.done.json").write_text("[]")
"""


@pytest.fixture
def fake_child(tmp_path, monkeypatch):
    script = tmp_path / "child.py"
    script.write_text(FAKE_CHILD)

    def use(crash_on: str) -> None:
        monkeypatch.setattr(
            convert, "child_command", lambda job: [sys.executable, str(script), str(job), crash_on]
        )

    return use


def test_crash_falls_back_and_says_so(fake_child):
    fake_child("lce+rewrite")
    result = convert.convert(Path("model.keras"))
    assert result.strategy == "lce" and result.flatbuffer == b"fakelce"
    assert len(result.failures) == 1
    assert "lce+rewrite" in result.failures[0] and "SIGSEGV" in result.failures[0]


def test_every_strategy_crashing_is_one_clear_error(fake_child):
    fake_child("lce+rewrite,lce,tflite")
    with pytest.raises(convert.ConversionError, match="crashed \\(SIGSEGV\\).*nothing was written"):
        convert.convert(Path("model.keras"))


def test_python_error_in_the_child_names_its_last_line(fake_child):
    with pytest.raises(convert.ConversionError, match="unsupported op in this model"):
        fake_child("")
        convert.convert(Path("model.keras"), strategies=("raise",))


def test_a_failed_baseline_keeps_the_main_model(fake_child):
    fake_child("int8")
    result = convert.convert(Path("model.keras"), baselines=("float", "int8"))
    assert result.strategy == "lce+rewrite" and result.flatbuffer == b"fakelce+rewrite"
    assert result.baselines == {"float": b"fakefloat"}
    assert any("baseline int8" in f and "SIGSEGV" in f for f in result.failures)


def test_convert_many_names_the_model_that_failed(fake_child):
    fake_child("lce+rewrite")
    with pytest.raises(convert.ConversionError, match="a.keras"):
        convert.convert_many([Path("a.keras"), Path("b.keras")])

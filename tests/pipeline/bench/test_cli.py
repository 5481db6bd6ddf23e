"""The bench command line: table + JSON, --compare on a run directory, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "targets"))
import tiny_models  # noqa: E402

from pipeline import runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def bench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.bench", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory holding the three exports, as export --baselines leaves it."""
    from pipeline.bench.cli import EXPORTS

    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    runs.write_json(run / runs.CONFIG, {"model": "tiny"})
    for kind, name in EXPORTS.items():
        (run / name).write_bytes(tiny_models.models()[kind].read_bytes())
    return run


def test_model_on_host_prints_a_table_and_writes_json(tmp_path):
    out = tmp_path / "b.json"
    proc = bench("--model", tiny_models.models()["int8"], "--target", "host", "--runs", "9",
                 "--warmup", "1", "--json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| tiny_int8.tflite | int8 |" in proc.stdout
    assert "target: host; CPU:" in proc.stdout and "threads: 1; 9 timed runs" in proc.stdout
    data = json.loads(out.read_text())
    (m,) = data["measurements"]
    assert len(m["latencies_ms"]) == 9 and m["min_ms"] <= m["median_ms"] <= m["p90_ms"]
    assert m["size_bytes"] == tiny_models.models()["int8"].stat().st_size
    assert "TFLite builtin kernels" in m["kernels"] and m["threads"] == 1


def test_compare_runs_all_three_exports_and_prints_ratios(run_dir):
    proc = bench("--run", run_dir, "--target", "host", "--runs", "5", "--warmup", "1", "--compare")
    assert proc.returncode == 0, proc.stderr
    assert "| float/int8 |" in proc.stdout and "| float/binary |" in proc.stdout
    data = json.loads((run_dir / "bench-host.json").read_text())
    assert [m["kind"] for m in data["measurements"]] == ["float", "int8", "binary"]
    sizes = {m["kind"]: m["size_bytes"] for m in data["measurements"]}
    assert data["ratios"]["float/int8"]["size"] == pytest.approx(sizes["float"] / sizes["int8"])
    assert data["ratios"]["float/binary"]["latency"] > 0


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--compare"], "--compare needs --run", 2),
        (["--target", "host", "--runs", "0"], "--runs must be at least 1", 2),
        (["--target", "toaster"], "unknown target 'toaster'", 2),
        (["--target", "ssh://nobody@127.0.0.1:1"], "cannot reach ssh://nobody@127.0.0.1:1", 1),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, code):
    if "--target" not in args:
        args = [*args, "--target", "host"]
    proc = bench("--model", tiny_models.models()["float"], *args)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_corrupt_model_is_one_line(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(tiny_models.models()["float"].read_bytes()[:1000])
    proc = bench("--model", broken, "--target", "host", "--json", tmp_path / "b.json")
    assert proc.returncode == 2
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_model_json_goes_next_to_the_model(tmp_path):
    """--model without --json writes beside the model, not into the current directory."""
    import argparse

    from pipeline.bench.cli import _models

    model = tmp_path / "sub" / "m.tflite"
    args = argparse.Namespace(model=model, run=None, target="qemu-armhf", compare=False)
    models, out = _models(args)
    assert models == [model] and out == tmp_path / "sub" / "bench-qemu_armhf.json"

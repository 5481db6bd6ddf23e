import pytest

from pipeline.bench.targets import lce_benchmark
from pipeline.bench.targets.base import TargetError

# The shape of TFLite benchmark_model's statistics: warm-up first, then the timed runs.
OUTPUT = """\
STARTING!
Loaded model /data/local/tmp/bitlite-model.tflite
The input model file size (MB): 0.12
Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=3 first=2100 curr=1400 min=1400 max=2100 avg=1633.33 std=329
Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=20 first=1250 curr=1190 min=1180 max=1302 avg=1210.5 std=30
Inference timings in us: Init: 3165, First inference: 2100, Warmup (avg): 1633.33, Inference (avg): 1210.5
"""  # noqa: E501


def test_parse_reads_the_timed_runs_not_the_warmup():
    stats = lce_benchmark.parse(OUTPUT, "adb")
    assert stats == {"count": 20, "min_ms": 1.18, "mean_ms": 1.2105}


def test_parse_without_timings_quotes_the_tools_last_line():
    with pytest.raises(TargetError, match="printed no timings: Segmentation fault"):
        lce_benchmark.parse("STARTING!\nSegmentation fault\n", "adb")


def test_command_asks_for_exactly_the_requested_runs():
    cmd = lce_benchmark.command("/x/lce_benchmark_model", "/tmp/m.tflite", 4, 20, 3)
    assert "--num_runs=20" in cmd and "--min_secs=0" in cmd and "--num_threads=4" in cmd

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from pipeline.bench.targets import make_target  # noqa: E402
from pipeline.bench.targets.base import Settings  # noqa: E402
from pipeline.bench.targets.measure import measure  # noqa: E402
from pipeline.errors import UsageError  # noqa: E402


@pytest.mark.parametrize("kind", ["float", "int8", "binary"])
def test_host_times_every_kind_and_says_what_ran(kind):
    m = measure(tiny_models.models()[kind], make_target("host"), Settings(runs=7, warmup=2))
    assert len(m.latencies_ms) == 7 and all(t > 0 for t in m.latencies_ms)
    lat = m.latency()
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert m.kind == kind and m.threads == 1 and m.cpu and m.os
    if kind == "binary":
        assert m.kernels.startswith("bitlite delegate (") and " in " in m.kernels
    else:  # stock TFLite: LiteRT (installed with bitlite), which runs int8 on XNNPACK too
        assert m.kernels.startswith("LiteRT ") and "TFLite builtin kernels" in m.kernels
        assert m.kernels.endswith("+ XNNPACK delegate")
    assert m.parity is None  # the host is the reference


def test_lce_engine_is_labelled_as_reference_kernels_on_x86():
    m = measure(tiny_models.models()["binary"], make_target("host"),
                Settings(runs=3, warmup=1, engine="lce"))  # fmt: skip
    assert m.kernels == "LCE x86 reference kernels"


def test_wrong_input_shape_is_one_clear_error(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((28, 28), np.float32))
    with pytest.raises(UsageError, match=r"input shape \(28, 28\) does not match .*\(1, 8, 8, 1\)"):
        measure(tiny_models.models()["float"], make_target("host"), Settings(runs=1, input=x))


def test_given_input_is_used(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.full((8, 8, 1), 0.5, np.float32))
    m = measure(tiny_models.models()["float"], make_target("host"), Settings(runs=2, input=x))
    assert len(m.latencies_ms) == 2

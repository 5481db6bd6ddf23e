"""The SSH target against a real OpenSSH server on 127.0.0.1 (this machine is the board)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402
from sshd import loopback_sshd  # noqa: E402

from pipeline.bench.targets.base import Settings, TargetError  # noqa: E402
from pipeline.bench.targets.measure import measure  # noqa: E402
from pipeline.bench.targets.ssh import SshTarget  # noqa: E402


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    try:
        with loopback_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except FileNotFoundError as err:
        pytest.skip(str(err))


def _target(sshd, **options) -> SshTarget:
    return SshTarget.from_url(sshd.url, identity=str(sshd.identity), ssh_options=sshd.options,
                              remote_python=sys.executable, **options)  # fmt: skip


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_round_trip_runs_on_the_device_and_matches_the_host(sshd, kind):
    m = measure(tiny_models.models()[kind], _target(sshd), Settings(runs=5, warmup=1))
    assert m.target == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    assert len(m.latencies_ms) == 5 and m.latency()["median_ms"] > 0
    assert m.parity["ok"] is True


def test_missing_benchmark_binary_on_the_device(sshd):
    target = _target(sshd, lce_benchmark="/nonexistent/lce_benchmark_model")
    with pytest.raises(TargetError, match="lce_benchmark_model is not on the device"):
        measure(tiny_models.models()["binary"], target, Settings(runs=1, engine="lce"))


def test_missing_python_on_the_device(sshd):
    target = SshTarget.from_url(sshd.url, identity=str(sshd.identity), ssh_options=sshd.options,
                                remote_python="/nonexistent/python3")  # fmt: skip
    with pytest.raises(TargetError, match="python3 is not on the device"):
        measure(tiny_models.models()["float"], target, Settings(runs=1))


def test_unreachable_host_is_one_line(sshd):
    closed = SshTarget("nobody", "127.0.0.1", port=1, ssh_options=sshd.options)
    message = r"cannot reach ssh://nobody@127.0.0.1:1 over SSH: .*refused"
    with pytest.raises(TargetError, match=message):
        measure(tiny_models.models()["float"], closed, Settings(runs=1))

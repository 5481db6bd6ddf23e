import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from pipeline.bench.targets import make_target  # noqa: E402
from pipeline.bench.targets.base import Settings  # noqa: E402
from pipeline.bench.targets.measure import measure  # noqa: E402
from pipeline.errors import BitliteError, UsageError  # noqa: E402


@pytest.fixture
def private_adb_server(monkeypatch):
    """A private adb server port, killed afterwards: no daemon outlives the test."""
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "5119")
    yield
    if shutil.which("adb"):
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30,
                       env={**os.environ, "ANDROID_ADB_SERVER_PORT": "5119"})  # fmt: skip


def test_no_device_is_a_clear_error(private_adb_server, tmp_path):
    tool = tmp_path / "lce_benchmark_model"
    tool.write_bytes(b"\x7fELF")
    target = make_target("adb:emulator-5554", lce_benchmark=str(tool))
    with pytest.raises(BitliteError) as err:
        measure(tiny_models.models()["binary"], target, Settings(runs=1))
    expected = "no Android device ready" if shutil.which("adb") else "adb is not installed"
    assert expected in str(err.value)


def test_adb_needs_the_users_benchmark_binary():
    with pytest.raises(UsageError, match="--lce-benchmark"):
        measure(tiny_models.models()["binary"], make_target("adb"), Settings(runs=1))

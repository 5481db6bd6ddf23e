"""Emulated AArch64: outputs against the host's, and a repeatable instruction count.

The first test to run builds the aarch64 sysroot (Debian 12, tflite-runtime) into the
bench cache (network-bound, about 25 MB; later runs reuse it). The Debian 13 one
(``qemu-aarch64-trixie``: Python 3.13, LiteRT) is used when ``.ci/sysroots`` has built it.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_models  # noqa: E402

from pipeline.bench.targets import icount, make_target, sysroot  # noqa: E402
from pipeline.bench.targets.base import Settings, TargetError  # noqa: E402
from pipeline.bench.targets.measure import measure  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None,
    reason="qemu-user is not installed (apt-get install qemu-user)",
)


def test_plugin_loads_into_the_installed_qemu(tmp_path):
    """qemu runs a real aarch64 program with the plugin loaded and the plugin counts it.
    (It used to run the host's /bin/true, which qemu refuses anyway, and pass whenever
    stderr lacked one message: any other failure passed too.)"""
    compiler = shutil.which("aarch64-linux-gnu-gcc")
    if compiler is None:
        pytest.skip("g++-aarch64-linux-gnu is not installed (it builds the guest program)")
    source, program = tmp_path / "exit0.c", tmp_path / "exit0"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run([compiler, "-static", "-O1", "-o", str(program), str(source)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    out = tmp_path / "counts"
    proc = subprocess.run(["qemu-aarch64", "-plugin", f"{icount.build_plugin()},out={out}",
                           str(program)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    totals = [int(line.split()[1]) for line in out.read_text().splitlines()
              if line.startswith("total ")]  # fmt: skip
    assert len(totals) == 1 and totals[0] > 1000, out.read_text()  # libc start-up and exit
    assert icount.read_counts(out) == []  # no marker pair in this program


_measured = {}
# target -> what runs float and int8 there: the sysroot's stock TFLite
STOCK = {"qemu-aarch64": "tflite-runtime 2.14.0", "qemu-aarch64-trixie": "LiteRT 2.3.0"}


def _measure(kind: str, spec: str = "qemu-aarch64"):
    """One emulated run per model kind and target, shared by the tests below (each costs
    ~10 s CPU)."""
    if spec == "qemu-aarch64-trixie" and sysroot.existing("aarch64-trixie") is None:
        pytest.skip("no aarch64-trixie sysroot in the cache: build it with .ci/sysroots")
    if (kind, spec) not in _measured:
        model = tiny_models.models()[kind]
        _measured[kind, spec] = measure(model, make_target(spec), Settings(runs=3, warmup=1))
    return _measured[kind, spec]


@pytest.mark.parametrize("spec", list(STOCK))
@pytest.mark.parametrize("kind", ["float", "int8", "binary"])
def test_aarch64_outputs_match_the_host(kind, spec):
    m = _measure(kind, spec)
    assert m.parity["ok"] is True, m.parity
    assert m.cpu.startswith("emulated aarch64")
    assert m.instructions_per_invoke > 1000
    assert m.latency()["median_ms"] is None  # no emulated wall time passed off as latency
    host = "litert" if spec.endswith("-trixie") else "tflite_runtime"
    if kind == "binary":  # bitlite's delegate inside the sysroot's own runtime
        assert m.kernels.startswith("bitlite delegate (neon binary GEMM) in " + host), m.kernels
    else:
        assert m.kernels.startswith(STOCK[spec] + ": TFLite builtin kernels"), m.kernels


def test_instruction_count_is_repeatable():
    model = tiny_models.models()["int8"]
    again = measure(model, make_target("qemu-aarch64"), Settings(runs=3, warmup=1))
    counts = [_measure("int8").instructions_per_invoke, again.instructions_per_invoke]
    assert abs(counts[0] - counts[1]) <= 0.001 * counts[0], counts


def test_lce_engine_has_no_arm_build_to_emulate():
    with pytest.raises(TargetError, match="no ARM build of larq-compute-engine"):
        measure(tiny_models.models()["binary"], make_target("qemu-aarch64"),
                Settings(runs=1, engine="lce"))  # fmt: skip

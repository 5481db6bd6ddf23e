"""The model matrix on emulated Arm: our cross-built library inside the real Arm host
runtimes, under qemu-user, against LCE's x86 results.

This runs the NEON kernels (and the reference one) end to end, in two aarch64 sysroots:
Debian 12's Python 3.11 with tflite-runtime 2.14 (``aarch64``, Raspberry Pi OS bookworm)
and Debian 13's Python 3.13 with LiteRT and numpy 2 from cp313 wheels (``aarch64-trixie``,
Raspberry Pi OS trixie, on an emulated Cortex-A76 as in a Pi 5; no tflite-runtime there).
pipeline.bench.targets.sysroot builds them (Debian packages and wheels, 25-45 MB: bookworm's
on first use, trixie's with .ci/sysroots); point BITLITE_QEMU_SYSROOT_<NAME> (e.g.
BITLITE_QEMU_SYSROOT_AARCH64_TRIXIE) at one to use it instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from bitlite_runtime import build
from runtime_models import GUEST_REPORT_SCRIPT, compare, guest_report, read_results, write_cases

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
QEMU = {"aarch64": "qemu-aarch64", "armhf": "qemu-arm"}
# sysroot name -> (architecture, the host runtime bitlite_runtime must pick there)
SYSROOTS = {"aarch64": ("aarch64", "tflite_runtime"), "aarch64-trixie": ("aarch64", "litert"),
            "armhf": ("armhf", "tflite_runtime")}


def _sysroot(name: str) -> tuple[Path, Path, list[str]]:
    """(root, its python, qemu's options for it) for a sysroot name. Debian 12's is built
    on first use; Debian 13's is used when .ci/sysroots has built it."""
    try:
        from pipeline.bench.targets import sysroot
    except ImportError:
        pytest.skip("pipeline.bench.targets.sysroot is not available")
    env = os.environ.get("BITLITE_QEMU_SYSROOT_" + name.upper().replace("-", "_"))
    if env:
        found = sysroot.Sysroot(name, Path(env))
        return found.root, _python_in(found.root), found.qemu_args
    if name.endswith("-trixie"):
        found = sysroot.existing(name)
        if found is None:
            pytest.skip(f"no {name} sysroot in the cache: build it with .ci/sysroots {name}")
    else:
        try:
            found = sysroot.ensure(name, progress=lambda _: None)
        except Exception as e:  # no network, no dpkg-deb...: nothing to test against
            pytest.skip(f"no {name} sysroot: {e}")
    return found.root, found.python, found.qemu_args


def _python_in(root: Path) -> Path:
    """The newest usr/bin/python3.N of a sysroot given by path."""
    found = [p for p in (root / "usr" / "bin").glob("python3.*")
             if re.fullmatch(r"python3\.\d+", p.name)]  # fmt: skip
    if not found:
        pytest.fail(f"no usr/bin/python3.N in {root}")
    return max(found, key=lambda p: int(p.name.split(".")[1]))


@pytest.fixture(scope="module", params=list(SYSROOTS))
def arm_target(request, tmp_path_factory):
    name = request.param
    arch, host = SYSROOTS[name]
    if arch == "armhf" and not os.environ.get("BITLITE_TEST_ARMHF"):
        # ARMv7 NEON is covered by test_build's kernel check under qemu-arm; the whole
        # matrix there costs another emulated Python start (set BITLITE_TEST_ARMHF=1).
        pytest.skip("armhf model matrix is opt-in: BITLITE_TEST_ARMHF=1")
    if shutil.which(QEMU[arch]) is None or shutil.which(build.compiler_for(arch)) is None:
        pytest.skip(f"{QEMU[arch]} or the {arch} cross compiler is not installed")
    root, python, qemu_args = _sysroot(name)
    library = build.build_library(arch, tmp_path_factory.mktemp(f"lib-{arch}"))
    return SimpleNamespace(arch=arch, host=host, root=root, python=python, library=library,
                           qemu_args=qemu_args)


def _run_in_qemu(target, cases, tmp_path) -> tuple[list[list[np.ndarray]], dict]:
    """Our runtime inside the sysroot's host runtime under qemu: every case in one guest
    process (starting Python under emulation is the slow part); and what ran them."""
    args = write_cases(cases, tmp_path)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(target.root / "site-packages"), str(RUNTIME_DIR)]),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "OPENBLAS_NUM_THREADS": "1",
        "BITLITE_LIBRARY": str(target.library), "BITLITE_KERNEL": "neon",
    }
    out = tmp_path / "y.npz"
    cmd = [QEMU[target.arch], *target.qemu_args, "-L", str(target.root), str(target.python), "-c",
           GUEST_REPORT_SCRIPT, str(out), *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_results(out, cases), guest_report(proc.stdout)


def _packed_case() -> SimpleNamespace:
    """BitliteDecodeWeights (3-bit codes straddling bytes) feeding a FULLY_CONNECTED."""
    from packed_models import packed_model, random_spec

    rng = np.random.default_rng(5)
    spec = random_spec(rng, 3, (17, 23), levels=6)
    x = rng.normal(size=(2, 23)).astype(np.float32)
    w = spec.expected()
    return SimpleNamespace(model=packed_model(spec), inputs=[x],
                           expected=[np.concatenate([w, w]), x @ w.T])


def test_matrix_under_qemu_matches_lce(arm_target, main_case, int8_case, tmp_path):
    """NEON kernels end to end (the reference kernel is checked against them under qemu
    by test_build, and against LCE on the host by test_interpreter); in the same guest
    process (one emulated Python start), k-bit packed weights decode bit for bit. The
    delegate runs in the sysroot's own host runtime: tflite-runtime on bookworm, LiteRT
    (the only one installed) on trixie."""
    packed = _packed_case()
    cases = [main_case, int8_case, packed]
    (*lce_got, packed_got), info = _run_in_qemu(arm_target, cases, tmp_path)
    assert info["host"] == arm_target.host and info["hosts"] == [arm_target.host], info
    assert arm_target.python.name == f"python{'.'.join(info['python'].split('.')[:2])}"
    for case, got in zip(cases, lce_got, strict=False):
        compare(case, got, exact_float=True)
    np.testing.assert_array_equal(packed_got[0], packed.expected[0])
    np.testing.assert_allclose(packed_got[1], packed.expected[1], rtol=1e-5, atol=1e-5)

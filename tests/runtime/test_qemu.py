"""The model matrix on emulated Arm: our cross-built library inside the real Arm
tflite-runtime 2.14 wheel, under qemu-user, against LCE's x86 results.

This runs the NEON kernels (and the reference one) end to end. It needs an Arm Python
sysroot with numpy and tflite-runtime: pipeline.bench.targets.sysroot builds one (about 25 MB
of Debian packages and wheels), or point BITLITE_QEMU_SYSROOT_<ARCH> at one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from bitlite_runtime import build
from runtime_models import GUEST_SCRIPT, compare

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
QEMU = {"aarch64": "qemu-aarch64", "armhf": "qemu-arm"}


def _sysroot(arch: str) -> Path:
    env = os.environ.get(f"BITLITE_QEMU_SYSROOT_{arch.upper()}")
    if env:
        return Path(env)
    try:
        from pipeline.bench.targets import sysroot
    except ImportError:
        pytest.skip("pipeline.bench.targets.sysroot is not available")
    try:
        return sysroot.ensure(arch, progress=lambda _: None).root
    except Exception as e:  # no network, no dpkg-deb...: nothing to test against
        pytest.skip(f"no {arch} sysroot: {e}")


@pytest.fixture(scope="module", params=["aarch64", "armhf"])
def arm_target(request, tmp_path_factory):
    arch = request.param
    if arch == "armhf" and not os.environ.get("BITLITE_TEST_ARMHF"):
        # ARMv7 NEON is covered by test_build's kernel check under qemu-arm; the whole
        # matrix there costs another emulated Python start (set BITLITE_TEST_ARMHF=1).
        pytest.skip("armhf model matrix is opt-in: BITLITE_TEST_ARMHF=1")
    if shutil.which(QEMU[arch]) is None or shutil.which(build.compiler_for(arch)) is None:
        pytest.skip(f"{QEMU[arch]} or the {arch} cross compiler is not installed")
    root = _sysroot(arch)
    library = build.build_library(arch, tmp_path_factory.mktemp(f"lib-{arch}"))
    return arch, root, library


def _run_in_qemu(arch_target, cases, tmp_path) -> list[list[np.ndarray]]:
    """Our runtime inside the Arm tflite-runtime under qemu: every case in one guest
    process (starting Python under emulation is the slow part)."""
    arch, root, library = arch_target
    args = []
    for k, case in enumerate(cases):
        model, inputs = tmp_path / f"m{k}.tflite", tmp_path / f"x{k}.npz"
        model.write_bytes(case.model)
        np.savez(inputs, *case.inputs)
        args += [str(model), str(inputs)]
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(root / "site-packages"), str(RUNTIME_DIR)]),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "OPENBLAS_NUM_THREADS": "1",
        "BITLITE_LIBRARY": str(library), "BITLITE_KERNEL": "neon",
    }
    out = tmp_path / "y.npz"
    cmd = [QEMU[arch], "-L", str(root), str(root / "usr/bin/python3.11"), "-c", GUEST_SCRIPT,
           str(out), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(out)
    return [[data[f"{k}_{j}"] for j in range(len(case.expected))]
            for k, case in enumerate(cases)]


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
    process (one emulated Python start), k-bit packed weights decode bit for bit."""
    packed = _packed_case()
    cases = [main_case, int8_case, packed]
    *lce_got, packed_got = _run_in_qemu(arm_target, cases, tmp_path)
    for case, got in zip(cases, lce_got, strict=False):
        compare(case, got, exact_float=True)
    np.testing.assert_array_equal(packed_got[0], packed.expected[0])
    np.testing.assert_allclose(packed_got[1], packed.expected[1], rtol=1e-5, atol=1e-5)

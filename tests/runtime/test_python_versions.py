"""The model matrix in other Python installs: e.g. Python 3.12 / 3.13 with LiteRT and
numpy 2, where neither TensorFlow nor LCE installs.

Set BITLITE_TEST_PYTHONS to interpreters (os.pathsep-separated) in which
``pip install ./runtime`` of this checkout has run; each runs the bitlite_runtime
installed there (package and library as pip built them) on the LCE-converted models,
in one process, and must match LCE's x86 results bit for bit. Unset: skipped.

And a Debian 13 "trixie" root (x86_64), where ``pip install ./runtime`` itself runs: its
python3.13 makes a venv and pip builds this checkout's runtime with trixie's g++, from
cp313 wheels only (LiteRT and numpy 2, no tflite-runtime), under chroot. The root is
pipeline.bench.targets.sysroot's ``x86_64-trixie``, built by ``.ci/sysroots`` (or point
BITLITE_TRIXIE_ROOT at one); without it, or without root for chroot, skipped.

And the emulated Raspberry Pi OS trixie (``aarch64-trixie``, under qemu-aarch64): the
guest's python3.13 makes a venv and trixie's pip runs ``pip install ./runtime`` there from
LiteRT's and numpy's cp313 aarch64 wheels, compiling with Debian's cross compiler (see
test_pip_install_runtime_in_emulated_arm_trixie_matches_lce); skipped without the root
(.ci/sysroots aarch64-trixie), qemu-aarch64 or aarch64-linux-gnu-g++.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from bitlite_runtime import build
from runtime_models import GUEST_REPORT_SCRIPT, compare, guest_report, read_results, write_cases

PYTHONS = [p for p in os.environ.get("BITLITE_TEST_PYTHONS", "").split(os.pathsep) if p]
RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
TRIXIE = "x86_64-trixie"
ARM_TRIXIE = "aarch64-trixie"
ARM_CXX = "aarch64-linux-gnu-g++"  # Debian's cross compiler, an x86-64 program


@pytest.mark.skipif(not PYTHONS, reason="BITLITE_TEST_PYTHONS is not set")
@pytest.mark.parametrize("python", PYTHONS)
def test_matrix_in_another_python_matches_lce(python, main_case, int8_case, tmp_path):
    cases = [main_case, int8_case]
    args = write_cases(cases, tmp_path)
    out = tmp_path / "y.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BITLITE_"))}
    proc = subprocess.run([python, "-c", GUEST_REPORT_SCRIPT, str(out), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = guest_report(proc.stdout)
    print(info)  # which Python, numpy and host ran (pytest -s shows it)
    assert Path(info["library"]).parent.name == "lib"  # the installed build, not this one
    for case, got in zip(cases, read_results(out, cases), strict=True):
        compare(case, got, exact_float=True)


# ------------------------------------------------------------------ Debian 13 root


def _trixie_root() -> Path:
    """The x86_64 Debian 13 root, or a skip saying why there is none to use here."""
    if platform.machine() != "x86_64":
        pytest.skip(f"the {TRIXIE} root is for x86_64 hosts")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("running in the Debian 13 root needs chroot and unshare, as root")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"no private mount namespace here for the chroot: {probe.stderr.strip()}")
    if env := os.environ.get("BITLITE_TRIXIE_ROOT"):
        return Path(env)
    try:
        from pipeline.bench.targets import sysroot
    except ImportError:
        pytest.skip("pipeline.bench.targets.sysroot is not available")
    found = sysroot.existing(TRIXIE)
    if found is None:
        pytest.skip(f"no {TRIXIE} root in {sysroot.cache_root()}: build it with .ci/sysroots")
    return found.root


# Mounts /dev and /proc for the chroot inside a private mount namespace: they vanish with
# it, so nothing stays mounted on the host whatever happens to the test.
_CHROOT = 'mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" && exec chroot "$@"'


def _in_root(root: Path, *cmd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "PIP_NO_INPUT": "1"}  # sbin: the host's chroot and mount
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           _CHROOT, "sh", str(root), *cmd], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{(proc.stderr + proc.stdout)[-3000:]}"
    return proc


@pytest.fixture
def root_scratch():
    """A fresh folder inside the Debian 13 root, removed afterwards: (root, folder)."""
    root = _trixie_root()
    folder = root / "tmp" / f"bitlite-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    yield root, folder
    shutil.rmtree(folder, ignore_errors=True)


def test_pip_install_runtime_in_debian_trixie_matches_lce(root_scratch, main_case, int8_case,
                                                          lenet_case):  # fmt: skip
    """What a Debian 13 / Raspberry Pi OS trixie user does: python3 -m venv, then
    pip install ./runtime (built by trixie's g++, LiteRT + numpy 2 from cp313 wheels, no
    tflite-runtime), then the models; outputs match LCE's (_check_against_lce)."""
    root, folder = root_scratch
    inside = "/" / folder.relative_to(root)  # the same folder as the chroot sees it
    shutil.copytree(RUNTIME_DIR, folder / "runtime", ignore=shutil.ignore_patterns(
        "build", "__pycache__", "*.so", "*.egg-info"))  # fmt: skip
    cases = [main_case, int8_case, lenet_case]
    args = ["/" / p.relative_to(root) for p in write_cases(cases, folder)]
    python = inside / "venv" / "bin" / "python"
    _in_root(root, "/usr/bin/python3.13", "-m", "venv", str(inside / "venv"))
    _in_root(root, str(python), "-m", "pip", "install", "--no-index", "--find-links",
             "/wheels", str(inside / "runtime"))  # fmt: skip
    proc = _in_root(root, str(python), "-c", GUEST_REPORT_SCRIPT, str(inside / "y.npz"),
                    *map(str, args), timeout=600)  # fmt: skip
    info = guest_report(proc.stdout)
    print(info)
    assert info["python"].startswith("3.13.") and info["numpy"].startswith("2.")
    assert info["host"] == "litert" and info["hosts"] == ["litert"]  # no tflite-runtime
    assert Path(info["library"]).is_relative_to(inside / "venv")  # pip's build, not ours
    _check_against_lce(cases, read_results(folder / "y.npz", cases))


def _check_against_lce(cases: list, results: list) -> None:
    """The LCE-converted models bit for bit (every output comes from bitlite's ops); the
    last case, bitlite's LeNet-5, ends in a softmax the host's float kernels compute (on
    aarch64, LiteRT's; LCE's on x86): the issue's float bound, 1e-5 relative, and the same
    class for every image."""
    (*matrix, lenet), (*matrix_got, lenet_got) = cases, results
    for case, got in zip(matrix, matrix_got, strict=True):
        compare(case, got, exact_float=True)
    compare(lenet, lenet_got, exact_float=False)
    np.testing.assert_array_equal(lenet_got[0].argmax(-1), lenet.expected[0].argmax(-1))


# ------------------------------------------------------------------ emulated Arm Debian 13

# The guest's python3.13 as a program the host kernel can start. qemu-user passes a guest's
# execve to the host kernel, which runs x86-64 programs natively but, without binfmt_misc
# registered for aarch64 (none here, nor in CI's containers; a real Pi needs none), cannot
# start an aarch64 one; pip starts sys.executable for its build steps. So the venv's
# python3.13 is this script, doing what binfmt_misc would: start the guest's python under
# qemu. -0 keeps argv[0] (the venv's path): Python finds the venv's pyvenv.cfg from it and
# sys.executable stays this script.
_GUEST_PYTHON = """#!/bin/sh
exec {qemu} {qemu_args} -L {root} -0 "$0" {python} "$@"
"""


def _arm_trixie():
    """The aarch64 Debian 13 root, qemu-aarch64 and the cross compiler, or a skip saying
    which is missing."""
    qemu, cxx = shutil.which("qemu-aarch64"), shutil.which(ARM_CXX)
    if qemu is None or cxx is None:
        pytest.skip(f"qemu-aarch64 or {ARM_CXX} is not installed")
    try:
        from pipeline.bench.targets import sysroot
    except ImportError:
        pytest.skip("pipeline.bench.targets.sysroot is not available")
    found = sysroot.existing(ARM_TRIXIE)
    if found is None:
        pytest.skip(f"no current {ARM_TRIXIE} root in {sysroot.cache_root()}: build it "
                    f"with .ci/sysroots {ARM_TRIXIE}")  # fmt: skip
    return found, qemu, cxx


def _guest(python: Path, *args: str, env: dict, timeout: int = 600) -> str:
    proc = subprocess.run([str(python), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{' '.join(args[:3])}:\n{(proc.stderr + proc.stdout)[-3000:]}"
    return proc.stdout


def test_pip_install_runtime_in_emulated_arm_trixie_matches_lce(main_case, int8_case,
                                                                lenet_case):  # fmt: skip
    """What a Raspberry Pi OS trixie user does, on an emulated Cortex-A76: python3 -m venv,
    then trixie's own pip installs ./runtime from the cp313 aarch64 wheels of LiteRT and
    numpy 2 (no tflite-runtime) and builds the library, then the LCE op matrix, the int8
    model and bitlite's LeNet-5 export (through predict()) run there. pip, setuptools and the build run in the
    guest; only the compiler is the host's: CXX is Debian's aarch64 cross compiler, which
    the guest starts natively (trixie's g++ under emulation is many times slower, and
    could not start its own aarch64 cc1plus without binfmt_misc)."""
    root, qemu, cxx = _arm_trixie()
    folder = Path(tempfile.mkdtemp(prefix="bitlite-", dir=root.root / "tmp"))
    try:
        _install_and_run(root, qemu, cxx, folder, [main_case, int8_case, lenet_case])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _install_and_run(root, qemu: str, cxx: str, folder: Path, cases: list) -> None:
    shutil.copytree(RUNTIME_DIR, folder / "runtime", ignore=shutil.ignore_patterns(
        "build", "__pycache__", "*.so", "*.egg-info"))  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8", "PIP_NO_INPUT": "1",
           "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "CXX": cxx}
    venv = folder / "venv"
    subprocess.run([qemu, *root.qemu_args, "-L", str(root.root), str(root.python), "-m", "venv",
                    "--without-pip", str(venv)], env=env, check=True, timeout=300)  # fmt: skip
    python = venv / "bin" / root.python.name
    python.unlink()  # the link to the guest's python3.13, which the host cannot exec
    python.write_text(_GUEST_PYTHON.format(
        qemu=shlex.quote(qemu), qemu_args=shlex.join(root.qemu_args),
        root=shlex.quote(str(root.root)), python=shlex.quote(str(root.python))))
    python.chmod(0o755)
    # trixie's pip (python3-pip-whl, what ensurepip would put in the venv), run from its
    # wheel; --no-compile: no byte-compiling numpy under emulation.
    (pip,) = (root.root / "usr" / "share" / "python-wheels").glob("pip-*.whl")
    _guest(python, str(pip / "pip"), "install", "--no-compile", "--no-index", "--find-links",
           str(root.wheels), str(folder / "runtime"), env=env)  # fmt: skip
    (wheel,) = (venv / "lib").glob("python3.13/site-packages/bitlite_runtime-*.dist-info/WHEEL")
    assert "Tag: cp313-cp313-linux_aarch64" in wheel.read_text()  # built by the guest's pip
    args = write_cases(cases, folder)
    report = _guest(python, "-c", GUEST_REPORT_SCRIPT, str(folder / "y.npz"), *map(str, args),
                    env={k: v for k, v in env.items() if k != "CXX"})  # fmt: skip
    info = guest_report(report)
    print(info)
    assert info["python"].startswith("3.13.") and info["numpy"].startswith("2.")
    assert info["host"] == "litert" and info["hosts"] == ["litert"]  # no tflite-runtime
    library = Path(info["library"])
    assert library.is_relative_to(venv) and build.elf_machine(library) == "aarch64"
    _check_against_lce(cases, read_results(folder / "y.npz", cases))

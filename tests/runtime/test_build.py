"""bitlite_runtime.build: host and cross builds, and the kernel checks they carry.

The standalone kernel check compares every optimized kernel with the reference
convolution on random packed tensors (and exercises the options parser). On the host
it runs the x86 kernels this CPU has; cross-built and run under qemu-user it runs the
NEON kernels (AArch64, and ARMv7 for armhf).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from bitlite_runtime import build

QEMU = {"aarch64": "qemu-aarch64", "armhf": "qemu-arm"}
ELF_MACHINE = {"aarch64": 183, "armhf": 40, "x86_64": 62}


def _needs(arch: str) -> None:
    compiler = build.compiler_for(arch)
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    if arch in QEMU and shutil.which(QEMU[arch]) is None:
        pytest.skip(f"{QEMU[arch]} not installed")


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


def _run_check(binary: Path, arch: str, iterations: int) -> str:
    cmd = ([QEMU[arch]] if arch in QEMU else []) + [str(binary), str(iterations)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_host_kernels_match_reference(tmp_path):
    out = _run_check(build.build_kernel_check("host", tmp_path), "host", 150)
    assert " 0 failed" in out and "generic" in out
    assert "decode: 150 packed tensors" in out


@pytest.mark.parametrize("arch", ["aarch64", "armhf"])
def test_neon_kernels_match_reference_under_qemu(arch, tmp_path):
    _needs(arch)
    binary = build.build_kernel_check(arch, tmp_path)
    assert _elf_machine(binary) == ELF_MACHINE[arch]
    out = _run_check(binary, arch, 150)
    assert "neon" in out and " 0 failed" in out
    assert "decode: 150 packed tensors" in out  # BitliteDecodeWeights on Arm too


@pytest.mark.parametrize("arch", ["aarch64", "armhf"])
def test_cross_built_library_needs_glibc_2_34_and_libstdcxx(arch, tmp_path):
    _needs(arch)
    library = build.build_library(arch, tmp_path)
    assert _elf_machine(library) == ELF_MACHINE[arch]
    readelf = shutil.which("readelf") or pytest.skip("readelf not installed")
    dynamic = subprocess.run([readelf, "-dW", str(library)], capture_output=True,
                             text=True, check=True).stdout
    needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines()
              if "(NEEDED)" in line}
    # What tflite-runtime's own Arm wheels need too: nothing more.
    assert needed <= {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0",
                      "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-aarch64.so.1",
                      "ld-linux-armhf.so.3"}, needed
    symbols = subprocess.run([readelf, "-VW", str(library)], capture_output=True,
                             text=True, check=True).stdout
    versions = {tuple(map(int, v.split("_")[1].split(".")))
                for v in symbols.split() if v.startswith("GLIBC_2")}
    assert max(versions) <= (2, 34), max(versions)
    exported = subprocess.run([readelf, "-sW", "--dyn-syms", str(library)],
                              capture_output=True, text=True, check=True).stdout
    assert "bitlite_register" in exported


def test_unknown_arch_is_refused():
    with pytest.raises(build.BuildError, match="unknown arch"):
        build.build_library("riscv64")


def test_cli_prints_library_path(tmp_path, capsys):
    assert build.main(["--arch", "host", "--out", str(tmp_path)]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / build.LIBRARY_NAME

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


def _needs(arch: str) -> None:
    compiler = build.compiler_for(arch)
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    if arch in QEMU and shutil.which(QEMU[arch]) is None:
        pytest.skip(f"{QEMU[arch]} not installed")


def _run_check(binary: Path, arch: str, iterations: int) -> str:
    cmd = ([QEMU[arch]] if arch in QEMU else []) + [str(binary), str(iterations)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _assert_kbit_compared(out: str) -> None:
    """The k-bit section (runtime/check/kbit_check.h) ran: most of its 150 random
    configurations were planned and compared against the oracle, many of them on the
    fused tiles where a kernel has them (AVX-512)."""
    line = next(x for x in out.splitlines() if x.startswith("kbit: "))
    run, banded, tiled, quantized, refused = (int(w.strip("()")) for w in line.split()
                                              if w.strip("()").isdigit())  # fmt: skip
    assert quantized == 150 and run > 100 and run + refused == 150 and banded > 10, line
    kernels = next(x for x in out.splitlines() if x.startswith("kernels: ")).split()
    assert tiled > run // 4 if "avx512" in kernels else tiled == 0, line


def test_host_kernels_match_reference(tmp_path):
    out = _run_check(build.build_kernel_check("host", tmp_path), "host", 150)
    assert " 0 failed" in out and "generic" in out
    assert "decode: 150 packed tensors" in out
    _assert_kbit_compared(out)


@pytest.mark.parametrize("arch", ["aarch64", "armhf"])
def test_neon_kernels_match_reference_under_qemu(arch, tmp_path):
    _needs(arch)
    binary = build.build_kernel_check(arch, tmp_path)
    assert build.elf_machine(binary) == arch
    out = _run_check(binary, arch, 150)
    assert "neon" in out and " 0 failed" in out
    assert "decode: 150 packed tensors" in out  # BitliteDecodeWeights on Arm too
    _assert_kbit_compared(out)  # the portable k-bit vector code, compiled for Arm


@pytest.mark.parametrize("arch", ["aarch64", "armhf"])
def test_cross_built_library_needs_glibc_2_34_and_libstdcxx(arch, tmp_path):
    _needs(arch)
    library = build.build_library(arch, tmp_path)
    assert build.elf_machine(library) == arch
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
    assert _exported(library) == EXPORTS


EXPORTS = {
    "tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate",  # load_delegate's ABI
    "BitliteDelegateOptionsDefault", "BitliteDelegateCreate", "BitliteDelegateDelete",
    "BitliteDelegateLastError", "BitliteKernelName", "BitliteDelegateProbe",  # the C header
    "bitlite_check_options", "bitlite_decode_count",  # test hooks
}


def _dynamic_symbols(library: Path) -> list[tuple[str, str]]:
    """(section, name) of every dynamic symbol: section UND for an import."""
    readelf = shutil.which("readelf") or pytest.skip("readelf not installed")
    table = subprocess.run([readelf, "--dyn-syms", "-W", str(library)], capture_output=True,
                           text=True, check=True).stdout
    rows = [line.split() for line in table.splitlines()]
    return [(r[6], r[7].split("@")[0]) for r in rows
            if len(r) >= 8 and r[0].rstrip(":").isdigit() and r[3] != "SECTION"]


def _exported(library: Path) -> set[str]:
    return {name for section, name in _dynamic_symbols(library) if section != "UND"}


def test_host_library_exports_only_the_c_api_and_imports_nothing_from_tflite(runtime_library):
    """One mechanism: the plain C delegate ABI. No C++ symbol of any TFLite build (the
    retired MutableOpResolver::AddCustom route), no TfLite* function, nothing exported
    beyond bitlite_delegate.h and the test hooks (the C++ library's template instances
    stay local)."""
    assert _exported(runtime_library) == EXPORTS
    imports = {name for section, name in _dynamic_symbols(runtime_library) if section == "UND"}
    assert not {n for n in imports if "tflite" in n.lower()}, imports
    assert "dlopen" not in imports and "dladdr" not in imports


C_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "bitlite_delegate.h"

/* Offsets of TFLite's TfLiteDelegate (tensorflow/lite/core/c/common.h), LP64. */
int main(void) {
  BitliteDelegateOptions options = BitliteDelegateOptionsDefault();
  options.kernel = "quantum";
  if (BitliteDelegateCreate(&options) != NULL) return 1;
  printf("error: %s\n", BitliteDelegateLastError());
  options.kernel = "reference";
  options.num_threads = 2;
  struct TfLiteDelegate* d = BitliteDelegateCreate(&options);
  if (d == NULL) return 2;
  const char* base = (const char*)d;
  void *data, *prepare, *builder;
  int64_t flags;
  memcpy(&data, base + 0, sizeof data);
  memcpy(&prepare, base + 8, sizeof prepare);
  memcpy(&flags, base + 40, sizeof flags);
  memcpy(&builder, base + 48, sizeof builder);
  printf("data %d prepare %d flags %lld builder %d kernel %s\n", data != NULL,
         prepare != NULL, (long long)flags, builder == NULL, BitliteKernelName("reference"));
  char probe[64];
  BitliteDelegateProbe(d, probe, sizeof probe);
  printf("probe %s\n", probe);
  BitliteDelegateDelete(d);
  return 0;
}
"""


def test_c_header_and_delegate_layout_from_c(runtime_library, tmp_path):
    """bitlite_delegate.h compiles as C, and the delegate it creates has TFLite's
    layout: data_ and Prepare set, flags = kTfLiteDelegateFlagsAllowDynamicTensors at
    offset 40, opaque_delegate_builder NULL at 48."""
    compiler = shutil.which("cc") or shutil.which("gcc") or pytest.skip("no C compiler")
    source = tmp_path / "use_delegate.c"
    source.write_text(C_PROGRAM)
    binary = tmp_path / "use_delegate"
    subprocess.run([compiler, "-std=c99", "-Wall", "-Werror", f"-I{build.source_dir()}",
                    str(source), str(runtime_library), f"-Wl,-rpath,{runtime_library.parent}",
                    "-o", str(binary)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "error: bitlite: kernel option: unknown BITLITE_KERNEL" in out.stdout
    assert "data 1 prepare 1 flags 1 builder 1 kernel reference" in out.stdout
    assert 'probe {"prepared":false,"threads_seen":0}' in out.stdout


def test_unknown_arch_is_refused():
    with pytest.raises(build.BuildError, match="unknown arch"):
        build.build_library("riscv64")


def test_cli_prints_library_path(tmp_path, capsys):
    assert build.main(["--arch", "host", "--out", str(tmp_path)]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / build.LIBRARY_NAME


def test_host_build_by_a_compiler_for_another_machine_is_refused(tmp_path, monkeypatch):
    """An emulated aarch64 pip whose ``c++`` is the host's x86-64 compiler (or any CXX for
    the wrong machine) must fail the build, not ship a library that cannot load."""
    other = {"x86_64": "aarch64", "aarch64": "armhf"}.get(build.host_arch())
    if other is None:
        pytest.skip(f"no cross compiler to try on {build.host_arch()}")
    _needs(other)
    monkeypatch.setenv("CXX", build.compiler_for(other))
    with pytest.raises(build.BuildError, match=f"for {other}, not {build.host_arch()}: set CXX"):
        build.build_library("host", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind

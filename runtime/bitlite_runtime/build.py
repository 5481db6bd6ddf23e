"""Build bitlite's TFLite delegate library (libbitlite_delegate.so) for the host or cross for Arm.

One compile command per architecture; `setup.py` (pip install) and the cross-build CLI
both call `build_library`, so the flags live only here.

    python -m bitlite_runtime.build --arch aarch64 --out build/aarch64

The host build (``pip install``) compiles with ``$CXX``, else ``c++``, and checks that the
library is for this machine. Cross compilers are Debian's: g++-aarch64-linux-gnu
(aarch64), g++-arm-linux-gnueabihf (armhf, ARMv7 + NEON, e.g. a Raspberry Pi 2/3/4 with a
32-bit OS). The library needs
glibc >= 2.34 and the system's libstdc++ (GCC >= 12's), as tflite-runtime 2.14's Arm
wheels do; libstdc++ is not linked statically because its static archive would pull in
glibc 2.36 symbols (arc4random, _dl_find_object).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIBRARY_NAME = "libbitlite_delegate.so"
# The delegate glue over TFLite's structs; the kernel check and fuzzer link the rest.
_TFLITE_GLUE = ("delegate.cc", "ops.cc")
ARCHES = ("host", "aarch64", "armhf")

_CROSS_COMPILERS = {"aarch64": "aarch64-linux-gnu-g++", "armhf": "arm-linux-gnueabihf-g++"}
# ELF e_machine -> the machine in host_arch() terms, to check what a compiler produced.
_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "armhf"}
# -ffp-contract=off: no fused multiply-add, so the float output transform
# x * mul + bias rounds exactly as LCE's does on every architecture.
_COMMON_FLAGS = [
    "-std=c++17", "-O3", "-ffp-contract=off", "-fPIC", "-shared", "-fvisibility=hidden",
    "-pthread", "-Wall", "-Wextra",
]
_ARCH_FLAGS = {
    "host": [],
    "aarch64": [],  # NEON is part of the AArch64 baseline
    "armhf": ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"],
}
_SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                   "-fno-omit-frame-pointer", "-g", "-O1"]
# ThreadSanitizer (the convolution thread pool), for the standalone kernel check only.
_TSAN_FLAGS = ["-fsanitize=thread", "-fno-omit-frame-pointer", "-g", "-O1"]


class BuildError(RuntimeError):
    """The compiler is missing or failed; the message says which and why."""


def source_dir() -> Path:
    """The C++ sources: shipped inside the installed package, or the source tree's src/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "src", here.parent / "src"):
        if (candidate / "delegate.cc").is_file():
            return candidate
    raise BuildError(f"C++ sources not found next to {here}")


def sources() -> list[Path]:
    return sorted(source_dir().glob("*.cc"))


def host_arch() -> str:
    """The host's name in ARCHES terms (x86_64 hosts build 'host' = x86_64)."""
    machine = platform.machine().lower()
    return {"arm64": "aarch64", "armv7l": "armhf"}.get(machine, machine)


def target_machine(arch: str) -> str:
    """The machine a build for `arch` runs on ("host" -> this machine's)."""
    return host_arch() if arch == "host" else arch


def elf_machine(path: Path) -> str | None:
    """The machine an ELF file is for (a _ELF_MACHINES value), or None if not one of them."""
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return _ELF_MACHINES.get(int.from_bytes(header[18:20], "little"))


def compiler_for(arch: str) -> str:
    if arch not in ARCHES:
        raise BuildError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHES)}")
    if arch == "host" or arch == host_arch():
        return os.environ.get("CXX", "c++")
    return _CROSS_COMPILERS[arch]


def compile_flags(arch: str, sanitize: bool = False) -> list[str]:
    """The compiler flags of a library build for `arch`."""
    compiler_for(arch)  # validates arch
    cross = arch != "host" and arch != host_arch()
    flags = _COMMON_FLAGS + _ARCH_FLAGS["host" if not cross else arch]
    return flags + (_SANITIZE_FLAGS if sanitize else [])


def compile_command(arch: str, output: Path, sanitize: bool = False) -> list[str]:
    flags = compile_flags(arch, sanitize)
    exports = source_dir() / "bitlite_delegate.map"
    return [compiler_for(arch), *flags, *map(str, sources()), f"-Wl,--version-script={exports}",
            "-o", str(output)]


def build_library(arch: str = "host", out_dir: str | os.PathLike = "build",
                  sanitize: bool = False) -> Path:
    """Compile the delegate library for `arch` into `out_dir`; returns the library path.

    The file appears atomically (compiled to a temporary name, then renamed), so
    concurrent test processes never load a half-written library.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / LIBRARY_NAME
    cmd = compile_command(arch, target, sanitize)
    if shutil.which(cmd[0]) is None:
        hint = {"aarch64": "apt-get install g++-aarch64-linux-gnu",
                "armhf": "apt-get install g++-arm-linux-gnueabihf"}.get(arch, "install g++")
        raise BuildError(f"compiler {cmd[0]} not found ({hint})")
    with tempfile.NamedTemporaryFile(dir=out, suffix=".so.tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    cmd[cmd.index("-o") + 1] = str(tmp_path)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp_path.unlink(missing_ok=True)
        raise BuildError(f"building {LIBRARY_NAME} for {arch} failed:\n{proc.stderr[-4000:]}")
    _check_machine(tmp_path, arch, cmd[0])
    os.replace(tmp_path, target)
    return target


def _check_machine(library: Path, arch: str, compiler: str) -> None:
    """Refuse a library built for another machine than `arch`'s. Under qemu-user (an
    emulated aarch64 pip) a plain ``c++`` resolves to the host's own x86-64 compiler, whose
    library would land in an aarch64 wheel and fail only at load time."""
    want, got = target_machine(arch), elf_machine(library)
    if want in _ELF_MACHINES.values() and got != want:
        library.unlink(missing_ok=True)
        raise BuildError(f"{compiler} built {LIBRARY_NAME} for {got or 'an unknown machine'}, "
                         f"not {want}: set CXX to a compiler for {want}")


def build_kernel_check(arch: str = "host", out_dir: str | os.PathLike = "build",
                       sanitize: bool | str = False) -> Path:
    """Compile the standalone kernel check (runtime/check/kernel_check.cc) for `arch`.

    It needs no Python or TFLite, so a cross build runs under qemu-user; cross builds
    are linked statically so that qemu needs no target sysroot. `sanitize`: True for
    ASan + UBSan, "thread" for ThreadSanitizer.
    """
    check = source_dir().parent / "check" / "kernel_check.cc"
    if not check.is_file():
        raise BuildError(f"{check} not found (reinstall bitlite_runtime: pip install ./runtime)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tsan = sanitize == "thread"
    target = out / ("kernel_check" + ("-tsan" if tsan else "-asan" if sanitize else ""))
    cross = arch != "host" and arch != host_arch()
    flags = [f for f in _COMMON_FLAGS if f not in ("-shared", "-fPIC", "-fvisibility=hidden")]
    flags += _ARCH_FLAGS[arch if cross else "host"]
    flags += _TSAN_FLAGS if tsan else _SANITIZE_FLAGS if sanitize else []
    srcs = [str(p) for p in sources() if p.name not in _TFLITE_GLUE]
    cmd = [compiler_for(arch), *flags, str(check), *srcs, "-o", str(target),
           *(["-static"] if cross else [])]
    if shutil.which(cmd[0]) is None:
        raise BuildError(f"compiler {cmd[0]} not found")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building kernel_check for {arch} failed:\n{proc.stderr[-4000:]}")
    return target


def is_stale(library: Path) -> bool:
    """True when `library` is missing or older than any C++ source or header."""
    if not library.is_file():
        return True
    newest = max(p.stat().st_mtime for p in source_dir().iterdir()
                 if p.suffix in {".cc", ".h", ".map"})
    return library.stat().st_mtime < newest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bitlite_runtime.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHES, default="host")
    parser.add_argument("--out", default=None, help="output folder (default build/<arch>)")
    parser.add_argument("--sanitize", action="store_true", help="ASan + UBSan build")
    args = parser.parse_args(argv)
    try:
        path = build_library(args.arch, args.out or Path("build") / args.arch, args.sanitize)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

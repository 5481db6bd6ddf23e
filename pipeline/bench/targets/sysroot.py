"""An ARM Python sysroot for qemu-user, built on first use into a cache directory.

``qemu-aarch64 -L SYSROOT`` (or ``qemu-arm``) runs an ARM program on this machine,
resolving its dynamic loader and libraries inside SYSROOT. The sysroot needs no chroot,
binfmt or root: it is Debian's ARM packages of python3.11, numpy and libstdc++ unpacked
with ``dpkg-deb -x`` (downloaded through a private apt state, so the host's package
configuration is untouched), plus ARM wheels of ``tflite-runtime`` installed by the
host's own pip (``--platform manylinux_2_34_… --target``). About 25 MB of downloads.

The cache holds ``sysroot/<arch>/`` (ready once it contains READY, written last; a build
happens in a temporary directory renamed into place) and ``apt/<arch>/`` (the package
lists and .deb files, reused by a rebuild).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.bench.targets.base import TargetError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
PACKAGES = ("python3.11", "python3-numpy", "libstdc++6")
TFLITE_RUNTIME = "tflite-runtime==2.14.0"
PYTHON = "usr/bin/python3.11"
SITE = "site-packages"
READY = "READY"
STEP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Arch:
    debian: str  # Debian's architecture name
    triplet: str  # multiarch library directory
    qemu: str  # the qemu-user binary
    wheel: str  # the pip platform tag of tflite-runtime's wheel


ARCHES = {
    "aarch64": Arch("arm64", "aarch64-linux-gnu", "qemu-aarch64", "manylinux_2_34_aarch64"),
    "armhf": Arch("armhf", "arm-linux-gnueabihf", "qemu-arm", "manylinux_2_34_armv7l"),
}


@dataclass(frozen=True)
class Sysroot:
    arch: str
    root: Path

    @property
    def python(self) -> Path:
        return self.root / PYTHON

    @property
    def site(self) -> Path:
        return self.root / SITE

    @property
    def qemu(self) -> str:
        return ARCHES[self.arch].qemu


def cache_root() -> Path:
    """``$BITLITE_CACHE``, else ``$XDG_CACHE_HOME/bitlite``, else ``~/.cache/bitlite``."""
    if env := os.environ.get("BITLITE_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bitlite"


def ensure(arch: str, progress: Callable[[str], None] = print) -> Sysroot:
    """The sysroot for ``arch``, built first if the cache has none (under a lock)."""
    if arch not in ARCHES:
        raise TargetError(f"no sysroot recipe for '{arch}'; choose one of {sorted(ARCHES)}")
    final = cache_root() / "sysroot" / arch
    if (final / READY).exists():
        return Sysroot(arch, final)
    with _lock(cache_root() / f"sysroot-{arch}.lock"):
        if not (final / READY).exists():  # another process may have built it meanwhile
            _build(arch, final, progress)
    return Sysroot(arch, final)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _build(arch: str, final: Path, progress: Callable[[str], None]) -> None:
    spec = ARCHES[arch]
    apt_dir = cache_root() / "apt" / arch
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{arch}.", dir=final.parent))
    try:
        progress(f"building the {arch} sysroot in {final} (first use; ~25 MB download)")
        debs = _download_debs(spec, apt_dir, progress)
        progress(f"unpacking {len(debs)} Debian {spec.debian} packages")
        for deb in debs:
            _step(["dpkg-deb", "-x", str(deb), str(tmp)], f"unpacking {deb.name}")
        _link_blas(tmp / "usr" / "lib" / spec.triplet)
        progress(f"installing {TFLITE_RUNTIME} ({spec.wheel}) with pip")
        _step([
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", "--platform", spec.wheel,
            "--python-version", "3.11", "--implementation", "cp",
            "--target", str(tmp / SITE), TFLITE_RUNTIME,
        ], f"pip install {TFLITE_RUNTIME} for {arch}")  # fmt: skip
        (tmp / READY).write_text(" ".join(PACKAGES + (TFLITE_RUNTIME,)) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        progress(f"{arch} sysroot ready")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download_debs(spec: Arch, apt_dir: Path, progress: Callable[[str], None]) -> list[Path]:
    """Resolve and download PACKAGES and their dependencies for ``spec.debian``.

    A private apt state (its own lists, cache and an empty dpkg status) makes apt resolve
    the full dependency closure for the foreign architecture without touching the host.
    """
    for sub in ("lists/partial", "archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "status").touch()
    sources = apt_dir / "sources.list"
    sources.write_text(f"deb [arch={spec.debian}] {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n")
    options = [
        f"-oDir::State={apt_dir}", f"-oDir::State::status={apt_dir / 'status'}",
        f"-oDir::State::Lists={apt_dir / 'lists'}", f"-oDir::Cache={apt_dir}",
        f"-oDir::Cache::archives={apt_dir / 'archives'}",
        f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/nonexistent",
        f"-oAPT::Architecture={spec.debian}", f"-oAPT::Architectures::={spec.debian}",
        "-oDebug::NoLocking=1", "-oAPT::Get::AllowUnauthenticated=false", "-q",
    ]  # fmt: skip
    progress(f"apt: reading Debian {DEBIAN_SUITE} {spec.debian} package lists")
    _step(["apt-get", *options, "update"], "apt-get update (private state)")
    progress(f"apt: downloading {', '.join(PACKAGES)} and dependencies")
    _step(
        ["apt-get", *options, "install", "--download-only", "--no-install-recommends", "-y",
         *PACKAGES],
        "apt-get download",
    )  # fmt: skip
    # Drop .debs of versions the mirror no longer has, so only one version of each is unpacked.
    _step(["apt-get", *options, "autoclean"], "apt-get autoclean")
    debs = sorted((apt_dir / "archives").glob("*.deb"))
    if not debs:
        raise TargetError("apt downloaded no packages for the sysroot")
    return debs


def _link_blas(libdir: Path) -> None:
    """Create the libblas/liblapack links that Debian's alternatives system would."""
    for name in ("blas", "lapack"):
        target = libdir / name / f"lib{name}.so.3"
        link = libdir / f"lib{name}.so.3"
        if target.exists() and not link.exists():
            link.symlink_to(target.relative_to(libdir))


def _step(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TargetError(f"building the sysroot: {what} took over {STEP_TIMEOUT_S} s") from None
    except FileNotFoundError:
        raise TargetError(f"building the sysroot needs {cmd[0]}, which is not installed") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR"))] or lines[-1:]
        raise TargetError(f"building the sysroot: {what} failed: {errors[0] if errors else '?'}")

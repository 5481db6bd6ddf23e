"""Python sysroots of other Debian releases and architectures, built on first use into a cache.

``qemu-aarch64 -L SYSROOT`` (or ``qemu-arm``) runs an ARM program on this machine,
resolving its dynamic loader and libraries inside SYSROOT. A sysroot needs no chroot,
binfmt or root to build: it is Debian's packages unpacked with ``dpkg-deb -x``
(downloaded through a private apt state, so the host's package configuration is
untouched), plus wheels installed by the host's own pip (``--platform … --target``).
The recipes (``RECIPES``):

* ``aarch64``, ``armhf``: Debian 12 "bookworm" with python3.11, numpy and the ARM wheels
  of ``tflite-runtime`` 2.14 (Raspberry Pi OS bookworm; about 25 MB of downloads).
* ``aarch64-trixie``: Debian 13 "trixie" with python3.13 and LiteRT's cp313 wheel
  (``ai-edge-litert`` with numpy 2): what ``pip install`` gives a Raspberry Pi OS trixie
  user on a Pi 4/5 today (about 50 MB). Also ``python3.13-venv`` (trixie's pip wheel) and
  the cp313 aarch64 wheels ``pip install ./runtime`` needs in ``wheels/``, for a test that
  runs it in the guest.
* ``x86_64-trixie``: Debian 13 with python3.13, ``python3.13-venv`` and ``g++``, and the
  cp313 wheels ``pip install ./runtime`` needs in ``wheels/`` (about 110 MB). Nothing is
  installed into it: a test runs a real ``python3.13 -m venv`` + ``pip install ./runtime``
  in it under ``chroot`` (root only), as a Debian 13 user would.

The cache holds ``sysroot/<name>/`` (ready once it contains READY, written last, naming
what the recipe installs: a root of an older recipe is rebuilt; a build happens in a
temporary directory renamed into place) and ``apt/<name>/`` (the package
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

from pipeline.errors import TargetError  # not from base: building a sysroot needs no numpy

DEBIAN_MIRROR = "http://deb.debian.org/debian"
SITE = "site-packages"
WHEELS = "wheels"
READY = "READY"
STEP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Arch:
    debian: str  # Debian's architecture name
    triplet: str  # multiarch library directory
    qemu: str  # the qemu-user binary ("" for the host's own architecture)
    wheel: str  # the machine in pip's platform tags


ARCHES = {
    "aarch64": Arch("arm64", "aarch64-linux-gnu", "qemu-aarch64", "aarch64"),
    "armhf": Arch("armhf", "arm-linux-gnueabihf", "qemu-arm", "armv7l"),
    "x86_64": Arch("amd64", "x86_64-linux-gnu", "", "x86_64"),
}


@dataclass(frozen=True)
class Recipe:
    """One sysroot: a Debian release's packages for an architecture, plus wheels."""

    arch: str  # a key of ARCHES
    suite: str  # the Debian release
    packages: tuple[str, ...]  # with their dependencies
    python: str  # the Python version Debian's packages give ("3.11")
    glibc: int  # the release's glibc 2.N: wheels up to manylinux_2_N fit, as on a device
    install: tuple[str, ...] = ()  # wheels installed into site-packages by the host's pip
    with_deps: bool = False  # install their dependencies too (else Debian's numpy serves)
    download: tuple[str, ...] = ()  # wheels (and dependencies) put in wheels/ for a pip inside
    size: str = "~25 MB"  # the download, for the progress message
    cpuinfo: str = ""  # one processor's /proc/cpuinfo entry to show the guest ("": the host's)
    qemu_cpu: str = ""  # the CPU qemu emulates, matching cpuinfo ("": qemu's default, "max")

    @property
    def qemu(self) -> str:
        return ARCHES[self.arch].qemu

    def platform_tags(self) -> list[str]:
        """Every manylinux tag this glibc runs, newest first: pip expands none of a
        --platform manylinux_2_N tag's older ones itself, as it does for its own machine."""
        machine = ARCHES[self.arch].wheel
        tags = [f"manylinux_2_{n}_{machine}" for n in range(self.glibc, 16, -1)]
        return tags + [f"manylinux2014_{machine}"]


# A Raspberry Pi 5's Cortex-A76, as its /proc/cpuinfo lists each core. qemu-user shows an
# aarch64 guest the host's x86 /proc/cpuinfo, on which LiteRT's cpuinfo library crashes
# (a NULL dereference at interpreter construction); a file under the sysroot is read
# instead (qemu -L looks there first). qemu then emulates that CPU (-cpu cortex-a76): the
# runtimes pick kernels by what cpuinfo says (an A72 has no SDOT), and on qemu 7.2's default
# "max" CPU XNNPACK's int8 kernels gave wrong outputs.
PI5_CPUINFO = """BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1
"""
# What pip gives a Raspberry Pi OS trixie user today, pinned so that counts repeat.
TRIXIE_WHEELS = ("ai-edge-litert==2.3.0", "numpy==2.5.5")
# runtime/pyproject.toml's build requirements, for a pip install ./runtime inside a root
BUILD_WHEELS = ("setuptools>=68", "wheel")
RECIPES = {
    "aarch64": Recipe("aarch64", "bookworm", ("python3.11", "python3-numpy", "libstdc++6"),
                      "3.11", 36, install=("tflite-runtime==2.14.0",)),
    "armhf": Recipe("armhf", "bookworm", ("python3.11", "python3-numpy", "libstdc++6"),
                    "3.11", 36, install=("tflite-runtime==2.14.0",)),
    "aarch64-trixie": Recipe("aarch64", "trixie", ("python3.13", "python3.13-venv", "libstdc++6"),
                             "3.13", 41, install=TRIXIE_WHEELS, with_deps=True,
                             download=(*TRIXIE_WHEELS, *BUILD_WHEELS), size="~50 MB",
                             cpuinfo=PI5_CPUINFO, qemu_cpu="cortex-a76"),
    "x86_64-trixie": Recipe("x86_64", "trixie", ("python3.13", "python3.13-venv", "g++"),
                            "3.13", 41, download=(*TRIXIE_WHEELS, *BUILD_WHEELS),
                            size="~110 MB"),
}  # fmt: skip


@dataclass(frozen=True)
class Sysroot:
    name: str  # a key of RECIPES
    root: Path

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.name]

    @property
    def arch(self) -> str:
        return self.recipe.arch

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / f"python{self.recipe.python}"

    @property
    def site(self) -> Path:
        return self.root / SITE

    @property
    def wheels(self) -> Path:
        return self.root / WHEELS

    @property
    def qemu(self) -> str:
        return self.recipe.qemu

    @property
    def qemu_args(self) -> list[str]:
        """qemu-user's options for this sysroot (its CPU model) before ``-L``."""
        return ["-cpu", self.recipe.qemu_cpu] if self.recipe.qemu_cpu else []


def cache_root() -> Path:
    """``$BITLITE_CACHE``, else ``$XDG_CACHE_HOME/bitlite``, else ``~/.cache/bitlite``."""
    if env := os.environ.get("BITLITE_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bitlite"


def ensure(name: str, progress: Callable[[str], None] = print) -> Sysroot:
    """The sysroot ``name`` (a key of RECIPES), built first if the cache has none (under a lock)."""
    if name not in RECIPES:
        raise TargetError(f"no sysroot recipe for '{name}'; choose one of {sorted(RECIPES)}")
    final = cache_root() / "sysroot" / name
    if not _is_current(name, final):
        with _lock(cache_root() / f"sysroot-{name}.lock"):
            if not _is_current(name, final):  # another process may have built it meanwhile
                _build(name, final, progress)
    return Sysroot(name, final)


def existing(name: str) -> Sysroot | None:
    """The sysroot ``name`` if the cache holds a finished one of today's recipe; never builds."""
    final = cache_root() / "sysroot" / name
    return Sysroot(name, final) if _is_current(name, final) else None


def stamp(name: str) -> str:
    """What READY says of a root built from today's recipe ``name``: a root whose READY
    says otherwise was built from an older recipe (e.g. without the wheels a test needs)."""
    recipe = RECIPES[name]
    return (f"{recipe.suite} {ARCHES[recipe.arch].debian}: "
            + " ".join(recipe.packages + recipe.install + recipe.download) + "\n")


def _is_current(name: str, final: Path) -> bool:
    try:
        return (final / READY).read_text() == stamp(name)
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _build(name: str, final: Path, progress: Callable[[str], None]) -> None:
    recipe = RECIPES[name]
    spec = ARCHES[recipe.arch]
    apt_dir = cache_root() / "apt" / name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    try:
        progress(f"building the {name} sysroot in {final} (first use; {recipe.size} download)")
        debs = _download_debs(recipe, apt_dir, progress)
        progress(f"unpacking {len(debs)} Debian {recipe.suite} {spec.debian} packages")
        for deb in debs:
            _step(["dpkg-deb", "-x", str(deb), str(tmp)], f"unpacking {deb.name}")
        _finish_unpacked(tmp, spec)
        if recipe.cpuinfo:
            _write_cpuinfo(tmp, recipe.cpuinfo)
        _add_wheels(recipe, tmp, progress)
        (tmp / READY).write_text(stamp(name))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        progress(f"{name} sysroot ready")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _finish_unpacked(root: Path, spec: Arch) -> None:
    """What dpkg's maintainer scripts and Essential packages would have left behind and
    the programs in the sysroot rely on."""
    _merge_usr(root)
    libdir = root / "usr" / "lib" / spec.triplet
    _link_alternative(libdir, "libblas.so.3", "blas/libblas.so.3")
    _link_alternative(libdir, "liblapack.so.3", "lapack/liblapack.so.3")
    _link_alternative(root / "usr" / "bin", "c++", "g++")  # pip install ./runtime runs c++
    _link_alternative(root / "usr" / "bin", "cc", "gcc")
    _ca_bundle(root)
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for mount_point in ("dev", "proc"):  # for a chroot, where those get mounted
        (root / mount_point).mkdir(exist_ok=True)


def _write_cpuinfo(root: Path, entry: str) -> None:
    """proc/cpuinfo listing ``entry`` for each CPU the host may have (at least a Pi's 4):
    cpuinfo matches the entries against /sys/devices/system/cpu/possible, the host's."""
    try:
        possible = Path("/sys/devices/system/cpu/possible").read_text().strip()
        count = int(possible.replace(",", "-").split("-")[-1]) + 1
    except (OSError, ValueError):
        count = os.cpu_count() or 1
    blocks = [f"processor\t: {i}\n{entry}" for i in range(max(4, count))]
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text("\n".join(blocks) + "\n")


def _merge_usr(root: Path) -> None:
    """/bin, /lib, ... -> usr/...: trixie's packages install only below /usr and leave the
    links to base-files; the dynamic loader is looked up as /lib/ld-linux-*.so."""
    for name in ("bin", "sbin", "lib", "lib64"):
        top, usr = root / name, root / "usr" / name
        if usr.is_dir() and not top.exists() and not top.is_symlink():
            top.symlink_to(f"usr/{name}")


def _ca_bundle(root: Path) -> None:
    """The CA bundle update-ca-certificates (ca-certificates' postinst) would write: Debian's
    pip loads it at start, even for a --no-index install."""
    certs = sorted((root / "usr" / "share" / "ca-certificates").rglob("*.crt"))
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    if certs and not bundle.exists():
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_text("".join(c.read_text() for c in certs))


def _link_alternative(directory: Path, link_name: str, target: str) -> None:
    """Create a link Debian's alternatives system would (update-alternatives is a
    maintainer script, which dpkg-deb -x does not run)."""
    link = directory / link_name
    if (directory / target).exists() and not link.exists() and not link.is_symlink():
        link.symlink_to(target)


def _add_wheels(recipe: Recipe, root: Path, progress: Callable[[str], None]) -> None:
    """Wheels for the sysroot's Python, chosen by the host's pip for its platform."""
    if recipe.install:
        progress(f"installing {', '.join(recipe.install)} for Python {recipe.python} with pip")
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=root.parent) as folder:
            wheels = _pip_download(recipe, recipe.install, Path(folder), recipe.with_deps)
            # Resolved for the sysroot's Python above; the host pip's own install step
            # would check Requires-Python against the host's version instead.
            _step([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                   "--ignore-requires-python", *_target_options(recipe), "--target",
                   str(root / SITE), *map(str, wheels)],
                  f"pip install {' '.join(recipe.install)} for {recipe.arch}")  # fmt: skip
    if recipe.download:
        progress(f"downloading {', '.join(recipe.download)} for Python {recipe.python} with pip")
        _pip_download(recipe, recipe.download, root / WHEELS, with_deps=True)


def _pip_download(recipe: Recipe, requirements: tuple[str, ...], dest: Path,
                  with_deps: bool) -> list[Path]:  # fmt: skip
    """``pip download`` the wheels for the recipe's Python and platform into ``dest``."""
    _step([sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "--quiet",
           *([] if with_deps else ["--no-deps"]), *_target_options(recipe), "--dest", str(dest),
           *requirements], f"pip download {' '.join(requirements)} for {recipe.arch}")  # fmt: skip
    return sorted(dest.glob("*.whl"))


def _target_options(recipe: Recipe) -> list[str]:
    """pip's options choosing wheels for the sysroot's Python and platform, not the host's."""
    platforms = [arg for tag in recipe.platform_tags() for arg in ("--platform", tag)]
    return ["--only-binary=:all:", *platforms, "--python-version", recipe.python,
            "--implementation", "cp"]  # fmt: skip


def _download_debs(recipe: Recipe, apt_dir: Path, progress: Callable[[str], None]) -> list[Path]:
    """Resolve and download the recipe's packages and their dependencies.

    A private apt state (its own lists, cache and an empty dpkg status) makes apt resolve
    the full dependency closure for the foreign architecture without touching the host.
    """
    for sub in ("lists/partial", "archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "status").touch()
    spec = ARCHES[recipe.arch]
    sources = apt_dir / "sources.list"
    sources.write_text(f"deb [arch={spec.debian}] {DEBIAN_MIRROR} {recipe.suite} main\n")
    options = [
        f"-oDir::State={apt_dir}", f"-oDir::State::status={apt_dir / 'status'}",
        f"-oDir::State::Lists={apt_dir / 'lists'}", f"-oDir::Cache={apt_dir}",
        f"-oDir::Cache::archives={apt_dir / 'archives'}",
        f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/nonexistent",
        f"-oAPT::Architecture={spec.debian}", f"-oAPT::Architectures::={spec.debian}",
        "-oDebug::NoLocking=1", "-oAPT::Get::AllowUnauthenticated=false", "-q",
    ]  # fmt: skip
    progress(f"apt: reading Debian {recipe.suite} {spec.debian} package lists")
    _step(["apt-get", *options, "update"], "apt-get update (private state)")
    progress(f"apt: downloading {', '.join(recipe.packages)} and dependencies")
    _step(
        ["apt-get", *options, "install", "--download-only", "--no-install-recommends", "-y",
         *recipe.packages],
        "apt-get download",
    )  # fmt: skip
    # Drop .debs of versions the mirror no longer has, so only one version of each is unpacked.
    _step(["apt-get", *options, "autoclean"], "apt-get autoclean")
    debs = sorted((apt_dir / "archives").glob("*.deb"))
    if not debs:
        raise TargetError("apt downloaded no packages for the sysroot")
    return debs


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


def main(argv: list[str] | None = None) -> int:
    """Build the named sysroots into the cache now (CI does, before the tests that use
    them); print each one's path and how long it took. Exit 2: an unknown name; 1: a
    build failed."""
    import argparse
    import time

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", metavar="NAME", help=", ".join(RECIPES))
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        print(f"error: no sysroot recipe for {', '.join(unknown)}; choose from "
              f"{', '.join(RECIPES)}", file=sys.stderr)  # fmt: skip
        return 2
    for name in args.names:
        start = time.monotonic()
        try:
            root = ensure(name, progress=lambda m: print(m, file=sys.stderr, flush=True))
        except TargetError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{name}: {root.root} ({time.monotonic() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sysroot recipes: wheel platform tags, the unpacked root's finishing touches, the
CLI CI calls, and the qemu target names that pick a recipe. Nothing here downloads."""

from __future__ import annotations

import os

import pytest

from pipeline.bench.targets import check_spec, make_target, sysroot
from pipeline.errors import UsageError


def test_trixie_wheels_are_chosen_for_trixies_glibc_and_every_older_manylinux():
    tags = sysroot.RECIPES["aarch64-trixie"].platform_tags()
    assert tags[0] == "manylinux_2_41_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_27_aarch64" in tags  # LiteRT's cp313 wheel's tag
    assert "manylinux_2_34_armv7l" in sysroot.RECIPES["armhf"].platform_tags()  # tflite-runtime
    assert not any("2_42" in t for t in tags)  # nothing newer than the device's glibc


def test_unpacked_root_gets_merged_usr_links_and_alternatives(tmp_path):
    (tmp_path / "usr" / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr" / "bin").mkdir()
    (tmp_path / "usr" / "bin" / "g++").write_text("")
    (tmp_path / "lib64").mkdir()  # a real directory (bookworm's layout) stays as it is
    mozilla = tmp_path / "usr" / "share" / "ca-certificates" / "mozilla"
    mozilla.mkdir(parents=True)
    (mozilla / "A.crt").write_text("-----A-----\n")
    (mozilla / "B.crt").write_text("-----B-----\n")
    sysroot._finish_unpacked(tmp_path, sysroot.ARCHES["x86_64"])
    assert (tmp_path / "lib").is_symlink() and (tmp_path / "lib").resolve() == (
        tmp_path / "usr" / "lib").resolve()  # fmt: skip
    assert not (tmp_path / "lib64").is_symlink() and not (tmp_path / "sbin").exists()
    assert (tmp_path / "usr" / "bin" / "c++").readlink().name == "g++"
    assert not (tmp_path / "usr" / "bin" / "cc").exists()  # no gcc: no dangling link
    assert (tmp_path / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert (tmp_path / "dev").is_dir() and (tmp_path / "proc").is_dir()
    bundle = tmp_path / "etc" / "ssl" / "certs" / "ca-certificates.crt"  # Debian's pip reads it
    assert bundle.read_text() == "-----A-----\n-----B-----\n"


def test_existing_never_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("BITLITE_CACHE", str(tmp_path))
    assert sysroot.existing("aarch64-trixie") is None
    ready = tmp_path / "sysroot" / "aarch64-trixie"
    ready.mkdir(parents=True)
    (ready / sysroot.READY).write_text(sysroot.stamp("aarch64-trixie"))
    found = sysroot.existing("aarch64-trixie")
    assert found.root == ready and found.python == ready / "usr/bin/python3.13"
    # a root of an older recipe (READY naming other packages) is not today's: not used
    (ready / sysroot.READY).write_text("trixie arm64: python3.13 libstdc++6\n")
    assert sysroot.existing("aarch64-trixie") is None
    assert list(tmp_path.iterdir()) == [tmp_path / "sysroot"]


def test_cli_refuses_an_unknown_name_with_one_line_and_builds_nothing(tmp_path, monkeypatch,
                                                                      capsys):  # fmt: skip
    monkeypatch.setenv("BITLITE_CACHE", str(tmp_path))
    assert sysroot.main(["aarch64-trixie", "sid"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no sysroot recipe for sid") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_qemu_target_names_pick_their_sysroot():
    assert check_spec("qemu-aarch64-trixie") == "qemu-aarch64-trixie"
    trixie = make_target("qemu-aarch64-trixie")
    assert (trixie.name, trixie.arch, trixie.sysroot_name) == (
        "qemu-aarch64-trixie", "aarch64", "aarch64-trixie")  # fmt: skip
    assert make_target("qemu-aarch64").sysroot_name == "aarch64"
    with pytest.raises(UsageError, match="unknown target 'qemu-x86_64-trixie'"):
        check_spec("qemu-x86_64-trixie")


def test_trixie_guest_sees_an_arm_cpuinfo_for_every_host_cpu(tmp_path):
    """LiteRT's cpuinfo crashes on the host's x86 /proc/cpuinfo under qemu-user."""
    sysroot._write_cpuinfo(tmp_path, sysroot.RECIPES["aarch64-trixie"].cpuinfo)
    text = (tmp_path / "proc" / "cpuinfo").read_text()
    cores = text.count("processor\t:")
    assert cores >= max(4, os.cpu_count()) and text.count("CPU part\t: 0xd0b") == cores
    assert not sysroot.RECIPES["aarch64"].cpuinfo  # bookworm's counts stay as they were
    # and qemu emulates the CPU that cpuinfo names (the runtimes pick kernels by it)
    assert sysroot.Sysroot("aarch64-trixie", tmp_path).qemu_args == ["-cpu", "cortex-a76"]
    assert sysroot.Sysroot("aarch64", tmp_path).qemu_args == []

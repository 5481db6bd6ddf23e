"""Run-directory I/O: atomic writes others can read, and the `latest` link."""

from __future__ import annotations

import os
import stat

import pytest

from pipeline import runs


def test_latest_is_marked_only_inside_the_root(tmp_path):
    root = tmp_path / "runs"
    inside, elsewhere = runs.Run(root / "a"), runs.Run(tmp_path / "mine" / "b")
    for run in (inside, elsewhere):
        run.path.mkdir(parents=True)
        runs.mark_latest(run, root=root)
    assert os.readlink(root / runs.LATEST) == "a"
    assert not (tmp_path / "mine" / runs.LATEST).exists()  # a folder the user never named


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    """mkstemp creates 0600 files: a runs/ bind-mounted from Docker (written by root) was
    unreadable by the host user. Written files now get 0666 minus the umask, like a
    plain open()."""
    old = os.umask(umask)
    try:
        runs.write_json(tmp_path / "a.json", {"x": 1})
        runs.write_text(tmp_path / "deep" / "b.md", "table\n")
        with runs.atomic_path(tmp_path / "c.bin") as tmp:
            tmp.write_bytes(b"model")
        with open(tmp_path / "plain", "w") as f:  # what the umask gives any file
            f.write("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("a.json", "deep/b.md", "c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
    assert runs.read_json(tmp_path / "a.json") == {"x": 1}
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left behind


def test_current_umask_leaves_the_umask_as_it_was():
    old = os.umask(0o027)
    try:
        assert runs.current_umask() == 0o027
        assert runs.current_umask() == 0o027
    finally:
        os.umask(old)

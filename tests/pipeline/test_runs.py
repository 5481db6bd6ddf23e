"""pipeline.runs: the run directory's one home."""

from __future__ import annotations

import os

from pipeline import runs


def test_latest_is_marked_only_inside_the_root(tmp_path):
    root = tmp_path / "runs"
    inside, elsewhere = runs.Run(root / "a"), runs.Run(tmp_path / "mine" / "b")
    for run in (inside, elsewhere):
        run.path.mkdir(parents=True)
        runs.mark_latest(run, root=root)
    assert os.readlink(root / runs.LATEST) == "a"
    assert not (tmp_path / "mine" / runs.LATEST).exists()  # a folder the user never named


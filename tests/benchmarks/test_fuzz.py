"""benchmarks/fuzz.py's argument checks (the runs themselves take hours)."""

from __future__ import annotations

import pytest

from benchmarks import fuzz


@pytest.mark.parametrize("argv", [["ops", "--runs", "0"], ["models", "--runs", "-5"],
                                  ["models", "--batch", "0"], ["models", "--minutes", "0"]])
def test_bad_arguments_exit_2_before_anything_runs(argv, capsys, monkeypatch):
    monkeypatch.setattr(fuzz, "run_ops", lambda *a: pytest.fail("ran"))
    monkeypatch.setattr(fuzz, "run_models", lambda *a: pytest.fail("ran"))
    assert fuzz.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")

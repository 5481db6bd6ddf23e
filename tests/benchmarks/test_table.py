"""benchmarks.table: every committed table names the command that printed it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.table import check_out, write_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def test_written_table_names_command_machine_load_and_date(tmp_path):
    script = ("import sys; from benchmarks.table import write_table; from pathlib import Path; "
              "write_table(Path(sys.argv[1]), 'T', '| a |')")  # fmt: skip
    out = tmp_path / "t.md"
    subprocess.run([sys.executable, "-c", script, str(out), "--flag"], cwd=ROOT, check=True)
    text = out.read_text()
    assert text.startswith("# T\n\nCommand: `python -m ")
    assert "--flag" in text.splitlines()[2] and text.rstrip().endswith("| a |")
    assert re.search(r"Machine: .+, \d+ cores, Python 3\.\d+", text)
    assert re.search(r"Load: \d+\.\d at start, \d+\.\d at the end", text)
    assert re.search(r"Date: \d{4}-\d\d-\d\d", text)


def test_write_table_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "t.md"
    write_table(path, "one", "1")
    write_table(path, "two", "2")
    assert path.read_text().startswith("# two") and "1\n" not in path.read_text()


def test_every_committed_table_names_a_command_that_exists():
    for table in sorted(RESULTS.rglob("*.md")):
        match = re.search(r"`python -m ([\w.]+)", table.read_text())
        assert match, f"{table.relative_to(ROOT)} names no command that printed it"
        module = match.group(1)
        path = ROOT / (module.replace(".", "/") + ".py")
        package = ROOT / module.replace(".", "/") / "__main__.py"
        assert path.is_file() or package.is_file(), f"{table.name}: no module {module}"


def test_write_table_that_cannot_write_keeps_the_figures_on_stdout(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    path = tmp_path / "a_file" / "t.md"  # its folder is a file
    with pytest.raises(SystemExit) as exit_:
        write_table(path, "T", "| 1.23 |")
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert out.startswith("# T\n") and "| 1.23 |" in out
    assert err.startswith(f"error: cannot write {path}: ") and err.count("\n") == 1
    assert not path.exists()


def test_check_out_exits_2_before_the_work_and_passes_a_writable_path(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as exit_:
        check_out(tmp_path / "a_file" / "t.md")
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: cannot write ")
    check_out(tmp_path / "new" / "t.md")  # creates the folder, leaves no file
    assert (tmp_path / "new").is_dir() and list((tmp_path / "new").iterdir()) == []

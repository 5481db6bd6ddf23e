"""README's promises: exactly two fenced set-up commands, and CI runs the second."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", quick, re.S)]


def test_readme_has_exactly_two_commands_install_run_and_test():
    main_job, tests = readme_commands()
    assert "python -m pipeline.train" in main_job and "python -m pipeline.export" in main_job
    assert "pytest" in tests and "\n" not in main_job and "\n" not in tests


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_readme_states_the_exit_codes_the_cli_glue_uses():
    """One convention for every command: README's table, pipeline.errors' classes."""
    from pipeline.errors import (
        EXIT_BAD_INPUT,
        EXIT_FAILED,
        CorruptFileError,
        DatasetUnavailableError,
        ParityError,
        UsageError,
    )

    text = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", text, re.M))
    assert "bad input" in rows[str(EXIT_BAD_INPUT)] and "corrupt" in rows[str(EXIT_BAD_INPUT)]
    assert "check" in rows[str(EXIT_FAILED)] and "parity" in rows[str(EXIT_FAILED)]
    for cls in (UsageError, CorruptFileError, DatasetUnavailableError):
        assert cls.exit_code == EXIT_BAD_INPUT == 2
    assert ParityError.exit_code == EXIT_FAILED == 1
    for command in ("pipeline.train", "pipeline.bench", "pipeline.compare", "tools.inq",
                    "tools.progressive", "tools.inspect"):  # fmt: skip
        assert f"`{command.removeprefix('pipeline')}`" in text or f"`{command}`" in text


def test_ci_installs_kotlin_so_the_preprocessing_test_runs():
    """tests/android_demo's Kotlin test skips without kotlinc; CI must not skip it."""
    ci = (ROOT / ".ci" / "run").read_text()
    install = ci[ci.index("apt-get install") :].split(">/dev/null", 1)[0]
    assert re.search(r"\bkotlin\b", install), install

"""The CLI glue every command shares: one ``error:`` line and one exit-code convention."""

from __future__ import annotations

import pytest

from pipeline import cli
from pipeline.errors import (
    BitliteError,
    CheckFailed,
    CorruptFileError,
    DatasetUnavailableError,
    ParityError,
    UsageError,
)


def _exit(main, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, [])
    return exit_info.value.code, capsys.readouterr().err


def _raising(error: BaseException):
    def main(argv):
        raise error

    return main


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("bad flag"), 2),
        (CorruptFileError("model.keras is damaged"), 2),
        (DatasetUnavailableError("no such --data-dir"), 2),
        (FileNotFoundError(2, "No such file or directory", "runs/x/config.json"), 2),
        (PermissionError(13, "Permission denied", "/out"), 2),
        (ParityError("parity broken"), 1),
        (CheckFailed("a check failed"), 1),
        (BitliteError("the converter crashed"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes_follow_one_convention(error, code, capsys):
    got, err = _exit(_raising(error), capsys)
    assert got == code
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if code != 130:
        assert err.startswith("error: ")


def test_a_multi_line_message_is_cut_to_its_first_line(capsys):
    code, err = _exit(_raising(BitliteError("tool failed: first\n  detail\n  more")), capsys)
    assert (code, err) == (1, "error: tool failed: first\n")


def test_argparse_usage_errors_exit_2_in_one_line(capsys):
    def main(argv):
        p = cli.parser("prog", "a test command")
        p.add_argument("--n", type=int)
        p.parse_args(["--n", "x"])

    code, err = _exit(main, capsys)
    assert code == 2 and err.startswith("prog: error: ") and len(err.splitlines()) == 1


def test_success_exits_0(capsys):
    assert _exit(lambda argv: 0, capsys)[0] == 0
    assert _exit(lambda argv: None, capsys)[0] == 0

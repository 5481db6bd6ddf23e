"""What every bitlite command line shares: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import EXIT_BAD_INPUT, BitliteError

PATH_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError,
               FileExistsError)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the full usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return _Parser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def run(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> None:
    """Run a CLI entry point: BitliteError -> one line on stderr and its exit code.

    The convention (:mod:`pipeline.errors`, README "Usage"): 2 for bad input — argparse's
    usage errors, :class:`~pipeline.errors.InputError`, a path that cannot be opened or
    created — and 1 when a check or step fails on valid input. Ctrl-C exits 130 with a
    note instead of a traceback; training has already saved its last completed epoch by
    then, so ``--resume`` picks up from there.
    """
    try:
        code = main(argv)
    except BitliteError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        sys.exit(err.exit_code)
    except PATH_ERRORS as err:  # a path the user gave: missing, a file, not writable
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def _one_line(message: str) -> str:
    """Messages may quote another tool's multi-line output: keep the first line."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"

"""What every bitlite command line shares: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import BitliteError


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

    Ctrl-C exits 130 with a note instead of a traceback; training has already saved its
    last completed epoch by then, so ``--resume`` picks up from there.
    """
    try:
        code = main(argv)
    except BitliteError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

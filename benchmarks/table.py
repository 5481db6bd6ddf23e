"""The one writer of ``benchmarks/results/``: every table says where its figures come from.

A table starts with its title, then the command that printed it (``python -m
benchmarks.NAME`` with the arguments it ran with), the machine, its load and the date, so a
reader can re-run it and judge how noisy the figures are. Scripts import this module
first: the load recorded is the one when the script started, before its own work.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from pipeline import runs
from pipeline.errors import EXIT_BAD_INPUT

LOAD_AT_START = os.getloadavg()[0]


def command() -> str:
    """``python -m benchmarks.NAME ARGS``: how the running script was started."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module = spec.name if spec is not None else f"benchmarks.{Path(sys.argv[0]).stem}"
    return shlex.join(["python", "-m", module, *sys.argv[1:]])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> str:
    """The header lines under a table's title."""
    load = os.getloadavg()[0]
    return (
        f"Command: `{command()}`  \n"
        f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}  \n"
        f"Load: {LOAD_AT_START:.1f} at start, {load:.1f} at the end (1-minute average; "
        f"the cores are shared, so timings are comparable only within one table)  \n"
        f"Date: {time.strftime('%Y-%m-%d')}\n"
    )


def check_out(path: Path) -> None:
    """Before a script's work: exit 2 with one line when ``path`` cannot be written (its
    folder is created, as :func:`write_table` would)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}."):
            pass
    except OSError as err:
        _cannot_write(path, err)


def write_table(path: Path, title: str, body: str) -> str:
    """Write ``# title``, the provenance lines and ``body`` to ``path``; return the text.
    When ``path`` cannot be written the figures are not lost: the table goes to stdout,
    one line to stderr, and the script exits 2."""
    text = f"# {title}\n\n{provenance()}\n{body.rstrip()}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_text(path, text)
    except OSError as err:
        print(text)
        _cannot_write(path, err)
    return text


def _cannot_write(path: Path, err: OSError) -> NoReturn:
    print(f"error: cannot write {path}: {err.strerror or err}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)

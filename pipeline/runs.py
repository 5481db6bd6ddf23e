"""The run directory: the one place that reads and writes what a stage hands the next.

A run directory holds ``config.json`` (the resolved configuration), ``metrics.csv`` (one
row per epoch), ``checkpoint/`` (model + optimizer state after the last finished epoch),
``model.keras`` (the final model), ``result.json`` and, after export, ``model.tflite`` and
``export_report.json``. Every write goes to a temporary file in the same directory and is
renamed into place, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

DEFAULT_ROOT = Path("runs")
LATEST = "latest"

CONFIG = "config.json"
METRICS = "metrics.csv"
RESULT = "result.json"
MODEL = "model.keras"
CHECKPOINT = "checkpoint.keras"
STATE = "state.json"
TFLITE = "model.tflite"
EXPORT_REPORT = "export_report.json"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; a file written in place would get 0666 minus the umask
        # (0644 usually), so a host user can read what a container's root wrote.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def current_umask() -> int:
    """The process's umask (reading it means setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8), creating ``path``'s folder: e.g. a bench table."""
    write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode()
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is not valid JSON ({err})") from None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


@dataclass(frozen=True)
class Run:
    """A run directory and typed access to its files."""

    path: Path

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    # -- config / result -------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.file(CONFIG), config)

    def config(self) -> dict[str, Any]:
        return read_json(self.file(CONFIG))

    def write_result(self, result: dict[str, Any]) -> None:
        write_json(self.file(RESULT), result)

    def result(self) -> dict[str, Any]:
        return read_json(self.file(RESULT))

    def has_result(self) -> bool:
        return self.file(RESULT).exists()

    # -- metrics ---------------------------------------------------------------------
    def metrics(self) -> list[dict[str, str]]:
        path = self.file(METRICS)
        if not path.exists():
            return []
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv whole (it is small), so it is never half a row long."""
        if not rows:
            return
        fields = list(rows[0])
        for row in rows[1:]:
            fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_bytes(self.file(METRICS), buf.getvalue().encode())

    # -- models ----------------------------------------------------------------------
    def save_model(self, model: Any, name: str = MODEL) -> Path:
        with atomic_path(self.file(name)) as tmp:
            model.save(tmp)
        return self.file(name)

    def load_model(self, name: str = MODEL) -> Any:
        path = self.file(name)
        if not path.exists():
            raise UsageError(
                f"{self.path} has no {name}: train it first (python -m pipeline.train)"
            )
        from pipeline.serialization import load_keras_model

        return load_keras_model(path)


def mark_latest(run: Run, root: Path = DEFAULT_ROOT) -> None:
    """Point ``<root>/latest`` at this run (a symlink, replaced atomically).

    Only for a run directly inside ``root``: a run the user placed elsewhere with
    ``--out`` must not write a link into a folder the user never named.
    """
    if run.path.parent != root.resolve():
        return
    link = run.path.parent / LATEST
    tmp = run.path.parent / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(run.path.name, tmp)
    os.replace(tmp, link)


def resolve(run: str | Path | None, root: Path = DEFAULT_ROOT) -> Run:
    """Find a run: an explicit directory, or the latest one under ``root``."""
    if run is None or str(run) == LATEST:
        link = root / LATEST
        if not link.exists():
            raise UsageError(
                f"no run found under {root}/: train one first (python -m pipeline.train) "
                "or pass --run DIR"
            )
        return Run(link.resolve())
    path = Path(run)
    if not path.is_dir():
        raise UsageError(f"run directory {path} does not exist")
    if not (path / CONFIG).exists():
        raise UsageError(f"{path} is not a bitlite run directory (no {CONFIG})")
    return Run(path.resolve())

"""Build the icount QEMU plugin (icount.c) and read what it counted.

The plugin is a host shared library, the same for every guest architecture; it is built
once per source version into the cache with the host's C compiler.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pipeline.bench.targets.base import TargetError
from pipeline.bench.targets.sysroot import cache_root

SOURCE = Path(__file__).with_name("icount.c")


def build_plugin() -> Path:
    """The compiled plugin, built into the cache if this source version has not been."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = cache_root() / "icount" / f"icount-{digest}.so"
    if out.exists():
        return out
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise TargetError("the qemu icount plugin needs a C compiler (apt-get install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(tmp), str(SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise TargetError(f"building the qemu icount plugin failed: {proc.stderr.strip()[:300]}")
    os.replace(tmp, out)
    return out


def read_counts(path: Path) -> list[int]:
    """Instructions between each marker pair, in order, from the plugin's output file."""
    if not path.exists():
        raise TargetError("the qemu icount plugin wrote no counts (was it loaded?)")
    lines = path.read_text().splitlines()
    return [int(line.split()[1]) for line in lines if line.startswith("pair ")]


def summarize(counts: list[int]) -> tuple[int, float]:
    """(median instructions per invoke, relative spread (max - min) / median)."""
    if not counts:
        raise TargetError("the qemu icount plugin saw no timed inference")
    values = np.asarray(counts, dtype=np.float64)
    median = float(np.median(values))
    return int(round(median)), float((values.max() - values.min()) / median)

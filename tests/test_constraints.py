"""The install is locked: constraints.txt pins the whole closure, and every command uses it.

A dependency released upstream must never change what README's commands install (a new
etils broke a fresh install once); so the installed closure must equal the lock, and a
refresh is a deliberate ``python .ci/lock.py > constraints.txt`` in a passing environment.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lock_module():
    spec = importlib.util.spec_from_file_location("bitlite_lock", ROOT / ".ci" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_every_installed_dependency_is_pinned_at_its_installed_version():
    lock = _lock_module()
    roots = lock.ROOTS + lock.installed_extras()  # e.g. bitlite[ray], where Ray is installed
    installed = {k: v for k, v in lock.closure(roots).items() if k not in lock.OURS}
    pins = pinned()
    missing = sorted(set(installed) - set(pins))
    drifted = {k: (pins[k], v) for k, v in installed.items() if k in pins and pins[k] != v}
    assert not missing, f"not in constraints.txt (run .ci/lock.py): {missing}"
    assert not drifted, f"installed version differs from the lock (lock, installed): {drifted}"


def test_lock_lines_are_exact_pins_and_sorted():
    lines = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]  # fmt: skip
    assert lines and all(re.fullmatch(r"[a-z0-9-]+==[\w.+!-]+", ln) for ln in lines), lines
    names = [ln.split("==")[0] for ln in lines]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_readme_ci_and_docker_install_through_the_lock():
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r"^(pip install [^\n]*)", readme, re.M)
    quick = [c for c in installs if "pipeline.train" in c or "pytest" in c]
    assert len(quick) == 2 and all("-c constraints.txt" in c for c in quick), quick
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()


def test_locked_pyarrow_imports_with_the_locked_numpy():
    """pyarrow 26 (pulled in by tfds) refuses numpy 1.x at import, which broke every Ray
    task; the lock must hold a pair that imports together."""
    import numpy
    import pyarrow

    assert numpy.__version__ == pinned()["numpy"] and pyarrow.__version__ == pinned()["pyarrow"]

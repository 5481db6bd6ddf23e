"""Print constraints.txt: every distribution bitlite's install needs, pinned to what is installed.

Run it in an environment where README.md's test command has just passed:

    python .ci/lock.py > constraints.txt

It walks the requirements of ``bitlite[test]`` and ``bitlite-runtime`` (markers evaluated
for this interpreter) through installed metadata, so the lock holds the whole closure and
nothing that merely happens to be on this machine. Optional extras users install on top
(``pip install -c constraints.txt -e ".[ray]"``) are locked the same way, so run it where
they are installed too; pins of an extra nobody installed constrain nothing. ``tests/test_constraints.py`` fails when
the installed closure and the lock disagree, which is what turns a dependency released
upstream into a deliberate refresh instead of a red CI on main.
"""

from __future__ import annotations

import datetime
import platform
import re
import sys
from importlib import metadata

from packaging.requirements import Requirement

ROOTS = ("bitlite[test]", "bitlite-runtime")
EXTRAS = ("bitlite[ray]",)  # optional: locked, checked only where installed
OURS = {"bitlite", "bitlite-runtime"}
HEADER = "# The pinned install of bitlite; regenerate with: python .ci/lock.py > constraints.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: tuple[str, ...] = ROOTS) -> dict[str, str]:
    """{canonical name: installed version} of every distribution the roots need."""
    found: dict[str, str] = {}
    todo = [Requirement(r) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (canonical(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)
        found[canonical(req.name)] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            env = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in env):
                todo.append(sub)
    return found


def installed_extras() -> tuple[str, ...]:
    """The extras of EXTRAS whose requirements are installed here."""
    found = []
    for extra in EXTRAS:
        try:
            closure((extra,))
        except metadata.PackageNotFoundError:
            continue
        found.append(extra)
    return tuple(found)


def render(pins: dict[str, str]) -> str:
    stamp = f"{datetime.date.today()} on Python {platform.python_version()} {platform.machine()}"
    lines = [HEADER, f"# generated {stamp}"]
    lines += [f"{name}=={pins[name]}" for name in sorted(pins) if name not in OURS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(closure(ROOTS + EXTRAS)))  # an extra not installed: fails here

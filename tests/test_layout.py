"""The folders are the pipeline's stages and imports point one way (README: "How the code
is laid out"): building blocks never import a stage, a stage never imports another stage
(except the tools, which retrain with the training stage's pieces, and compare, which
drives them all), and no two modules import each other, however lazily."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "models", "tools")
STAGES = ("pipeline.train", "tools", "pipeline.export", "pipeline.bench", "pipeline.compare")
# stage -> the other stages it may import
ALLOWED = {
    "tools": {"pipeline.train"},
    "pipeline.compare": {"pipeline.train", "tools", "pipeline.export", "pipeline.bench"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    names = {module_name(p): p for p in files}
    return {name: {m for m in imports(p) if m in names and m != name} for name, p in names.items()}


def stage_of(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def test_building_blocks_import_no_stage_and_stages_import_no_other_stage():
    wrong = []
    for module, deps in graph().items():
        own = stage_of(module)
        for dep in deps:
            other = stage_of(dep)
            if other and other != own and other not in ALLOWED.get(own or "", set()):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports against the stages' direction:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    g = graph()
    # a package's __init__ re-exporting its own modules is not a cycle between ideas
    edges = {m: {d for d in deps if m != d.rsplit(".", 1)[0]} for m, deps in g.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in edges[node]:
            if state.get(dep) == 1:
                cycle.extend(path[path.index(dep):] + [dep] if dep in path else [node, dep])
                return True
            if dep not in state and visit(dep, path + [dep]):
                return True
        state[node] = 2
        return False

    for node in sorted(edges):
        if node not in state and visit(node, [node]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)

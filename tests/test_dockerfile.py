"""The Dockerfile runs README.md's main command: its install part at build, the rest as CMD.

No Docker engine runs in CI, so this checks the Dockerfile by construction: the base image,
the compiler the runtime needs, the install step and default command verbatim from the
README, and that .dockerignore keeps every source file the install step reads.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_main_command() -> str:
    """The first fenced command of README.md: install, train, export."""
    block = re.search(r"```\w*\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no fenced command"
    return block.group(1).strip()


def split_main_command(command: str) -> tuple[str, str]:
    """``pip install ... && job...`` -> (the install part, the job part)."""
    parts = [p.strip() for p in command.split("&&")]
    n = next(i for i, p in enumerate(parts) if not p.startswith("pip install"))
    return " && ".join(parts[:n]), " && ".join(parts[n:])


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if not ln.startswith("#")]
    text = re.sub(r"\\\n\s*", "", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip())
            for ln in text.splitlines() if ln.strip()]  # fmt: skip


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (a pattern matching it or a parent folder)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], pattern[3:])
            ):
                return True
    return False


def source_files(folder: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", folder], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        return out.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts]  # fmt: skip


def test_readme_main_command_splits_into_install_and_job():
    install, job = split_main_command(readme_main_command())
    assert install.startswith("pip install ")
    assert "python -m pipeline.train" in job and "python -m pipeline.export" in job


def test_dockerfile_builds_on_python_311_slim_with_a_compiler():
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [args for kind, args in steps if kind == "RUN"]
    assert re.search(r"apt-get install .*\bg\+\+", runs[0]), "g++ builds runtime/"


def test_dockerfile_installs_and_runs_exactly_what_the_readme_says():
    install, job = split_main_command(readme_main_command())
    steps = dockerfile()
    assert ("RUN", install) in steps
    assert steps.index(("COPY", ". .")) < steps.index(("RUN", install))
    cmd = [args for kind, args in steps if kind == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0]) == ["sh", "-c", job]


def package_folders() -> list[str]:
    """The folders ``pip install .`` packages (pyproject's setuptools ``include``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]


def test_dockerignore_keeps_what_the_install_reads():
    install, _ = split_main_command(readme_main_command())
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]  # fmt: skip
    local = [arg for arg in install.split()[2:] if arg.startswith(".")]  # ./runtime, .
    assert local, install
    needed = []
    for path in local:
        folder = str((ROOT / path).resolve().relative_to(ROOT))
        folders = package_folders() if folder == "." else [folder]
        files = ["pyproject.toml"] if folder == "." else []
        for f in folders:
            files += source_files(f)
        assert len(files) > 1, f"{path} (from README's install command) has no source files"
        needed += files
    dropped = [p for p in needed if ignored(p, patterns)]
    assert not dropped, f".dockerignore drops files the install needs: {dropped[:5]}"
    assert ignored("runs/latest/model.tflite", patterns)  # users' runs stay out of the image


def test_readme_says_to_build_for_amd64_on_arm64_hosts():
    """LCE has no aarch64 wheel: on arm64 the image builds only for linux/amd64."""
    readme = (ROOT / "README.md").read_text()
    docker = readme.split("### Docker", 1)[1].split("\n## ", 1)[0]
    assert "docker build --platform linux/amd64" in docker
    assert "arm64" in docker and "aarch64" in docker
    base = dict(dockerfile())["FROM"]
    assert "--platform" not in base  # amd64 hosts build natively; the flag is the user's


def test_container_writes_files_the_host_user_can_read(tmp_path):
    """The image runs as root with Docker's default umask 022; what pipeline.runs writes
    must then be 0644 (mkstemp alone gives 0600: unreadable through a bind mount)."""
    import os
    import stat

    from pipeline import runs

    old = os.umask(0o022)
    try:
        runs.write_json(tmp_path / "runs" / "r" / "result.json", {"test_accuracy": 0.99})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "runs" / "r" / "result.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "runs" / "r").stat().st_mode) == 0o755

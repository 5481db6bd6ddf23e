"""Fixtures for the Android demo's tests, each built once per session (kotlinc and the
native builds are slow); the helpers are in android_build.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1] / "runtime", HERE):  # this checkout's runtime; the helpers
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from android_build import KotlinBuild, NativeBuild, cmake_build, compile_kotlin  # noqa: E402


@pytest.fixture(scope="session")
def kotlin_build(tmp_path_factory: pytest.TempPathFactory) -> KotlinBuild:
    return compile_kotlin(tmp_path_factory.mktemp("kotlin"))


@pytest.fixture(scope="session")
def native_host(tmp_path_factory: pytest.TempPathFactory) -> NativeBuild:
    return cmake_build("host", tmp_path_factory.mktemp("cmake-host"))


@pytest.fixture(scope="session")
def native_aarch64(tmp_path_factory: pytest.TempPathFactory) -> NativeBuild:
    return cmake_build("aarch64", tmp_path_factory.mktemp("cmake-aarch64"))

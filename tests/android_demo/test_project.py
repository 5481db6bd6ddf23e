"""The Android project's build files: LiteRT from Maven and bitlite's delegate from
runtime/src, no trace of LCE's AAR, three ABIs with 16 KB pages, and a Gradle wrapper that
says how to get its jar. (No Android SDK here: these are what Gradle would read.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from android_build import ANDROID

APP_GRADLE = ANDROID / "app" / "build.gradle.kts"


def project_files() -> list[Path]:
    skip = {".gradle", "build", ".cxx", "assets"}
    return [p for p in ANDROID.rglob("*") if p.is_file() and not skip & set(p.parts)]


def test_no_trace_of_lce_aar() -> None:
    for path in project_files():
        text = path.read_text(errors="replace")
        patterns = [r"lce-lite", r"\.aar\b", r"WITH_LCE", r"compute-engine/releases"]
        if path.suffix != ".md":  # the README says why not TFLite's own artifact
            patterns.append(r"org\.tensorflow:tensorflow-lite")
        for pattern in patterns:
            assert not re.search(pattern, text, re.I), f"{path.relative_to(ANDROID)}: {pattern}"


def test_litert_comes_from_maven_with_the_interpreter_and_delegate_api() -> None:
    versions = (ANDROID / "gradle" / "libs.versions.toml").read_text()
    assert re.search(r'^litert = "1\.4\.\d+"$', versions, re.M), "LiteRT 1.4.x: 2.x has no Delegate"
    assert 'group = "com.google.ai.edge.litert", name = "litert"' in versions
    gradle = APP_GRADLE.read_text()
    assert "implementation(libs.litert)" in gradle


def test_the_native_build_has_three_abis_and_16k_pages() -> None:
    gradle = APP_GRADLE.read_text()
    abis = re.search(r"abiFilters \+= listOf\(([^)]*)\)", gradle)
    assert abis and set(re.findall(r'"([\w-]+)"', abis.group(1))) == {
        "arm64-v8a", "armeabi-v7a", "x86_64"}  # fmt: skip
    assert "-DANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES=ON" in gradle
    assert 'path = file("src/main/cpp/CMakeLists.txt")' in gradle
    cmake = (ANDROID / "app" / "src" / "main" / "cpp" / "CMakeLists.txt").read_text()
    assert "-Wl,-z,max-page-size=16384" in cmake


def test_gradle_wrapper_without_its_jar_says_how_to_get_it(tmp_path: Path) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    properties = (ANDROID / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-"
                     r"[\d.]+-bin\.zip", properties)  # fmt: skip
    assert (ANDROID / "gradlew.bat").read_bytes().count(b"\r\n") > 5  # cmd.exe line endings
    # A copy without the jar (the checkout has none; a developer's may).
    project = tmp_path / "android_demo"
    (project / "gradle" / "wrapper").mkdir(parents=True)
    assert os.access(ANDROID / "gradlew", os.X_OK)
    shutil.copy(ANDROID / "gradlew", project / "gradlew")
    proc = subprocess.run(["sh", str(project / "gradlew"), "tasks"], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 2
    assert "gradle-wrapper.jar is missing" in proc.stderr and "gradle wrapper" in proc.stderr
    assert proc.stdout == ""

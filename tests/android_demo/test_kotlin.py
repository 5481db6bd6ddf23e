"""The app's JVM unit tests (android_demo/app/src/test, what `./gradlew test` runs), compiled
with Debian's kotlinc and run with Debian's JUnit 4, on the app's plain-Kotlin code."""

from __future__ import annotations

import re

import pytest
from android_build import JUNIT, KOTLIN_TESTS, KotlinBuild


def test_the_app_unit_tests_pass(kotlin_build: KotlinBuild) -> None:
    if not kotlin_build.unit_tests:
        pytest.skip(f"JUnit 4 not installed (apt: junit4; needs {JUNIT})")
    proc = kotlin_build.java("org.junit.runner.JUnitCore", *kotlin_build.unit_tests, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    # Every @Test ran: a test class that failed to load would run fewer.
    declared = sum(len(re.findall(r"^\s*@Test\b", f.read_text(), re.M))
                   for f in KOTLIN_TESTS.glob("*Test.kt"))  # fmt: skip
    assert re.search(rf"^OK \({declared} tests\)$", proc.stdout, re.M), proc.stdout[-2000:]

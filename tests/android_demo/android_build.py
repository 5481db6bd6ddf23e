"""Helpers of the Android demo's tests (conftest.py's fixtures use them): its plain-Kotlin
code compiled with Debian's kotlinc, and its native code (android_demo/app/src/main/cpp/
CMakeLists.txt) built with Debian's compilers (the NDK is not installed here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANDROID = ROOT / "android_demo"
KOTLIN = ANDROID / "app" / "src" / "main" / "java" / "org" / "bitlite" / "demo"
KOTLIN_TESTS = ANDROID / "app" / "src" / "test" / "java" / "org" / "bitlite" / "demo"
CPP = ANDROID / "app" / "src" / "main" / "cpp"
HERE = Path(__file__).resolve().parent
# The app's files without Android or LiteRT types: what a desktop JVM can compile and run.
PLAIN_KOTLIN = ("Json.kt", "ModelMetadata.kt", "Preprocessing.kt", "Compatibility.kt",
                "Results.kt", "BitliteNative.kt")  # fmt: skip
MAINS = ("PreprocessingMain.kt", "NativeMain.kt")  # drivers for the Python tests
JUNIT = Path("/usr/share/java/junit4.jar")  # Debian's junit4 (with libhamcrest-java)
HAMCREST = (Path("/usr/share/java/hamcrest-core.jar"), Path("/usr/share/java/hamcrest.jar"))


def junit_jars() -> list[Path]:
    """JUnit 4 and Hamcrest, or [] when Debian's junit4 is not installed."""
    hamcrest = next((h for h in HAMCREST if h.is_file()), None)
    return [JUNIT, hamcrest] if JUNIT.is_file() and hamcrest else []


@dataclass
class KotlinBuild:
    jar: Path  # the plain-Kotlin app code, the drivers and (with JUnit) the unit tests
    unit_tests: list[str]  # JUnit classes compiled into it ([] without JUnit)

    def classpath(self) -> str:
        extra = junit_jars() if self.unit_tests else []
        return os.pathsep.join(map(str, [self.jar, *extra]))

    def java(self, main: str, *args: str, library_path: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        flags = [f"-Djava.library.path={library_path}"] if library_path else []
        return subprocess.run(["java", *flags, "-cp", self.classpath(), main, *args],
                              capture_output=True, text=True, check=check, timeout=300)  # fmt: skip


def compile_kotlin(out: Path) -> KotlinBuild:
    """One kotlinc run (it is slow): the plain-Kotlin app code and the drivers, plus the
    JUnit tests when Debian's junit4 is installed."""
    if shutil.which("kotlinc") is None or shutil.which("java") is None:
        pytest.skip("kotlinc not installed (apt: kotlin)")
    sources = [KOTLIN / name for name in PLAIN_KOTLIN] + [HERE / name for name in MAINS]
    unit_tests: list[str] = []
    classpath: list[str] = []
    if junit_jars():
        tests = sorted(KOTLIN_TESTS.glob("*Test.kt"))
        sources += tests
        unit_tests = [f"org.bitlite.demo.{t.stem}" for t in tests]
        classpath = ["-cp", os.pathsep.join(map(str, junit_jars()))]
    jar = out / "android_demo.jar"
    proc = subprocess.run(["kotlinc", *classpath, *map(str, sources), "-include-runtime",
                           "-d", str(jar)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return KotlinBuild(jar, unit_tests)


def jni_include_dirs() -> list[Path]:
    """The JDK's jni.h and jni_md.h (Debian: openjdk-17-jdk-headless)."""
    javac = shutil.which("javac")
    homes = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    if javac:
        homes.append(Path(javac).resolve().parents[1])
    for home in homes:
        if (home / "include" / "jni.h").is_file():
            return [home / "include", home / "include" / "linux"]
    pytest.skip("no JDK jni.h (apt: openjdk-17-jdk-headless)")


@dataclass
class NativeBuild:
    arch: str
    dir: Path

    @property
    def delegate(self) -> Path:
        return self.dir / "libbitlite_delegate.so"

    @property
    def jni(self) -> Path:
        return self.dir / "libbitlite_jni.so"


CROSS = {"aarch64": "aarch64-linux-gnu-g++"}


def cmake_build(arch: str, out: Path) -> NativeBuild:
    """Configure and build the app's CMakeLists.txt for `arch` ("host" or "aarch64")."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed (apt: cmake)")
    include = ";".join(map(str, jni_include_dirs()))
    args = ["-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", f"-DBITLITE_JNI_INCLUDE_DIRS={include}"]
    if arch != "host":
        compiler = shutil.which(CROSS[arch]) or pytest.skip(f"{CROSS[arch]} not installed")
        args += ["-DCMAKE_SYSTEM_NAME=Linux", f"-DCMAKE_SYSTEM_PROCESSOR={arch}",
                 f"-DCMAKE_CXX_COMPILER={compiler}"]  # fmt: skip
    configure = subprocess.run(["cmake", "-S", str(CPP), "-B", str(out), *args],
                               capture_output=True, text=True)  # fmt: skip
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-4000:]
    jobs = "1" if (os.cpu_count() or 1) <= 2 else "4"  # a shared 2-core machine: one compiler
    build = subprocess.run(["cmake", "--build", str(out), "--parallel", jobs],
                           capture_output=True, text=True)  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return NativeBuild(arch, out)

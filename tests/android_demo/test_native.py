"""The app's native side without an Android SDK: android_demo/app/src/main/cpp/CMakeLists.txt
built with Debian's compilers (x86_64, and aarch64 as on a phone), and the app's
BitliteNative / Compatibility code run on a desktop JVM against the x86_64 build: the JNI
shim creates, configures and frees real delegates, and a missing library is a refusal with
its reason, not a crash.
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from android_build import ANDROID, CPP, KotlinBuild, NativeBuild
from bitlite_runtime import build as runtime_build

JNI_METHODS = {f"Java_org_bitlite_demo_BitliteNative_{m}"
               for m in ("nativeCreate", "nativeDelete", "nativeKernelName")}  # fmt: skip
PAGE_16K = 16384


# -- the CMake build is the runtime's build ------------------------------------------------


def compile_commands(build: NativeBuild) -> dict[str, list[str]]:
    """Source file -> its compiler arguments, from CMake's compile_commands.json."""
    entries = json.loads((build.dir / "compile_commands.json").read_text())
    return {Path(e["file"]).name: e["command"].split() for e in entries}


@pytest.mark.parametrize("arch", ["host", "aarch64"])
def test_cmake_compiles_the_runtime_sources_with_the_runtime_flags(arch, request):
    """One source list and one flag list: build.py's own (sources(), _COMMON_FLAGS), read by
    CMake, not copied; the shim is the only extra file."""
    build: NativeBuild = request.getfixturevalue(f"native_{arch}")
    commands = compile_commands(build)
    assert set(commands) == {p.name for p in runtime_build.sources()} | {"bitlite_jni.cc"}
    expected = [f for f in runtime_build._COMMON_FLAGS if f not in ("-shared",)]
    for name, args in commands.items():
        missing = [f for f in expected if f not in args]
        assert not missing, f"{name} compiled without {missing}"


def elf_header(library: Path) -> str:
    return subprocess.run(["readelf", "-h", str(library)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def load_alignments(library: Path) -> list[int]:
    """The alignment of every LOAD segment (readelf -l)."""
    table = subprocess.run(["readelf", "-lW", str(library)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    return [int(line.split()[-1], 16) for line in table.splitlines()
            if line.strip().startswith("LOAD")]  # fmt: skip


def exported(library: Path) -> set[str]:
    table = subprocess.run(["readelf", "--dyn-syms", "-W", str(library)], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    rows = [line.split() for line in table.splitlines()]
    return {r[7].split("@")[0] for r in rows if len(r) >= 8 and r[0].rstrip(":").isdigit()
            and r[6] != "UND" and r[3] in ("FUNC", "OBJECT")}  # fmt: skip


def version_script_globals() -> list[str]:
    text = (runtime_build.source_dir() / "bitlite_delegate.map").read_text()
    section = text.split("global:", 1)[1].split("local:", 1)[0]
    return re.findall(r"([\w*]+);", section)


@pytest.mark.parametrize("arch", ["host", "aarch64"])
def test_libraries_are_16k_aligned_and_export_only_their_c_api(arch, request):
    if shutil.which("readelf") is None:
        pytest.skip("readelf not installed (apt: binutils)")
    build: NativeBuild = request.getfixturevalue(f"native_{arch}")
    machine = "AArch64" if arch == "aarch64" else "X86-64"
    for library in (build.delegate, build.jni):
        assert machine in elf_header(library), library
        # Android 15's 16 KB pages: a 4 KB-aligned segment would not load there.
        aligns = load_alignments(library)
        assert aligns and all(a >= PAGE_16K for a in aligns), (library.name, aligns)
    assert exported(build.jni) == JNI_METHODS
    delegate_exports = exported(build.delegate)
    patterns = version_script_globals()
    assert all(any(fnmatch.fnmatchcase(s, p) for p in patterns) for s in delegate_exports)
    assert {"BitliteDelegateCreate", "BitliteDelegateDelete", "tflite_plugin_create_delegate"} <= (
        delegate_exports
    )


# -- the JNI shim on a JVM ---------------------------------------------------------------


def run_native_main(kotlin: KotlinBuild, library_path: Path, *models: Path) -> dict[str, str]:
    proc = kotlin.java("nativecheck.NativeMainKt", *map(str, models), library_path=library_path)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


class Oracle:
    """bitlite_delegate.h's C API called directly (ctypes), to compare the JNI answers with."""

    class Options(ctypes.Structure):
        _fields_ = [("num_threads", ctypes.c_int), ("kernel", ctypes.c_char_p)]

    def __init__(self, library: Path) -> None:
        self.lib = ctypes.CDLL(str(library))
        self.lib.BitliteKernelName.restype = ctypes.c_char_p
        self.lib.BitliteKernelName.argtypes = [ctypes.c_char_p]
        self.lib.BitliteDelegateCreate.restype = ctypes.c_void_p
        self.lib.BitliteDelegateCreate.argtypes = [ctypes.POINTER(Oracle.Options)]
        self.lib.BitliteDelegateDelete.argtypes = [ctypes.c_void_p]
        self.lib.BitliteDelegateLastError.restype = ctypes.c_char_p

    def kernel_name(self, kernel: str | None) -> str:
        return self.lib.BitliteKernelName(kernel.encode() if kernel else None).decode()

    def create(self, threads: int, kernel: str | None) -> str:
        """What NativeMain prints for BitliteNative.create(threads, kernel)."""
        options = Oracle.Options(threads, kernel.encode() if kernel else None)
        handle = self.lib.BitliteDelegateCreate(ctypes.byref(options))
        if handle:
            self.lib.BitliteDelegateDelete(handle)
            return "ok true"
        return f"IllegalArgumentException: {self.lib.BitliteDelegateLastError().decode()}"


@pytest.fixture(scope="module")
def loaded(kotlin_build: KotlinBuild, native_host: NativeBuild, meta: dict, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for name, overrides in MODELS.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps({**meta, **overrides}))
        paths.append(path)
    return run_native_main(kotlin_build, native_host.dir, *paths)


# model.json variants: the real BNN export's, and the same with other needs.
MODELS = {
    "bnn": {},
    "float": {"needs_lce": False, "needs_bitlite_runtime": False},
    "packed": {"needs_lce": False, "needs_bitlite_runtime": True},
}


@pytest.fixture(scope="module")
def meta(exported_run) -> dict:
    from pipeline.export import exporter as export

    return json.loads(exported_run[0].file(export.MODEL_JSON).read_text())


def test_jni_shim_creates_delegates_as_the_c_api_does(loaded: dict, native_host: NativeBuild):
    oracle = Oracle(native_host.delegate)
    assert loaded["loaded"] == "true" and loaded["load_error"] == ""
    assert loaded["done"] == "true"
    assert loaded["create"] == "ok true"
    assert loaded["kernel_name.default"] == oracle.kernel_name(None)
    for kernel in ("auto", "reference", "generic", "neon", "avx512", "nonsense"):
        assert loaded[f"kernel_name.{kernel}"] == oracle.kernel_name(kernel), kernel
        assert loaded[f"create.{kernel}"] == oracle.create(0, kernel), kernel
    # x86-64: no NEON kernels, so bitlite's reason reaches Java as the exception message.
    assert loaded["create.neon"].startswith("IllegalArgumentException: ")
    assert loaded["create.threads-1"] == oracle.create(-1, None)
    assert "num_threads" in loaded["create.threads-1"]
    assert loaded["distinct_handles"] == "200"


def test_a_loaded_delegate_runs_binary_and_packed_models(loaded: dict, native_host: NativeBuild):
    kernel = Oracle(native_host.delegate).kernel_name(None)
    for i, name in enumerate(MODELS):
        assert loaded[f"plan{i}.runnable"] == "true", name
        assert loaded[f"plan{i}.refusal"] == "", name
    assert loaded["plan0.use_delegate"] == loaded["plan2.use_delegate"] == "true"
    assert loaded["plan0.engine"] == f"LiteRT (XNNPACK) + bitlite delegate ({kernel})"
    assert loaded["plan1.use_delegate"] == "false"  # a float model: LiteRT alone


def test_without_the_library_binary_models_are_refused_with_the_reason(
    kotlin_build: KotlinBuild, meta: dict, tmp_path: Path
) -> None:
    """An APK whose native build is missing: UnsatisfiedLinkError becomes the refusal's
    reason; float models still run; nothing crashes."""
    paths = []
    for name, overrides in MODELS.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({**meta, **overrides}))
    empty = tmp_path / "no-libraries"
    empty.mkdir()
    out = run_native_main(kotlin_build, empty, *paths)
    assert out["loaded"] == "false"
    assert "bitlite_delegate" in out["load_error"], out["load_error"]
    assert out["create"] == f"IllegalStateException: {out['load_error']}"
    assert "done" not in out
    assert out["plan0.runnable"] == "false" and out["plan2.runnable"] == "false"
    assert out["plan1.runnable"] == "true" and out["plan1.use_delegate"] == "false"
    bnn, packed = out["plan0.refusal"], out["plan2.refusal"]
    assert bnn.startswith(f"Cannot run {meta['model']}: it has Larq Compute Engine's binary ops")
    assert out["load_error"] in bnn and "BitliteDecodeWeights" in packed


def test_cmake_reads_the_flags_it_needs_from_build_py():
    """The regex CMake applies to build.py finds the same list Python defines (a reformat of
    build.py that breaks it fails here, not only in an Android build)."""
    text = (runtime_build.source_dir().parent / "bitlite_runtime" / "build.py").read_text()
    block = re.search(r"_COMMON_FLAGS = \[([^]]*)\]", text)
    assert block, "CMakeLists.txt's pattern no longer matches build.py"
    assert re.findall(r'"([^"]+)"', block.group(1)) == runtime_build._COMMON_FLAGS
    cmake = (CPP / "CMakeLists.txt").read_text()
    assert r'"_COMMON_FLAGS = \\[([^]]*)\\]"' in cmake
    assert (ANDROID / "app" / "src" / "main" / "cpp" / "bitlite_jni.cc").is_file()

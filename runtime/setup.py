"""pip install ./runtime: compiles the delegate (libbitlite_delegate.so) for this machine
into the package.

The compile command lives in bitlite_runtime/build.py (loaded here by path, so building
needs neither numpy nor a TFLite runtime). The C++ sources and the kernel check ship
inside the package too, so an installed copy can still cross-build
(python -m bitlite_runtime.build --arch ...) and check its kernels.
Needs a C++17 compiler (g++ >= 9; on Raspberry Pi OS: sudo apt install g++).
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent


def _build_module():
    spec = importlib.util.spec_from_file_location("_bitlite_build",
                                                  HERE / "bitlite_runtime" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        package = Path(self.build_lib) / "bitlite_runtime"
        # the sources and the standalone kernel check, so an installed copy can still
        # cross-build and check its kernels (build_kernel_check)
        for folder in ("src", "check"):
            dest = package / folder
            dest.mkdir(parents=True, exist_ok=True)
            for f in (HERE / folder).iterdir():
                if f.suffix in {".cc", ".h", ".map"}:
                    shutil.copy2(f, dest / f.name)
        _build_module().build_library("host", package / "lib")


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform, not 'any'."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)

"""Writes runtime/check/RESULTS.md from the logs of one runtime/check/run_sanitized.sh run
(called by that script at its end; every figure comes from those logs).

    python runtime/check/results.py LOG_DIR LOAD_AT_START STARTED_EPOCH > RESULTS.md
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

STEPS = (  # log, title, whether it ran under a sanitizer
    ("kernel_check_asan.txt", "Kernel check, ASan + UBSan (300 iterations)", True),
    ("kernel_check_tsan.txt", "Kernel check, ThreadSanitizer (100 iterations)", True),
    ("kernel_check_aarch64.txt", "Kernel check cross-built for AArch64 (no sanitizer), under "
                                 "qemu-aarch64 (200 iterations)", False),
)
# The kernel check's summary lines (its per-comparison lines are not printed on success).
SUMMARY = re.compile(r"^(kernels:|conv:|\s+\d+ x |\s+\w+: \d+ comparisons|parser:|decode:|"
                     r"skipped kernel|\d+ passed, \d+ failed)")


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
    except OSError:
        return "not installed"
    return out.splitlines()[0].strip() if out else "not installed"


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def host_versions() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    found = []
    for name in ("ai-edge-litert", "tflite-runtime", "tensorflow"):
        try:
            found.append(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found) or "none"


def main(argv: list[str]) -> int:
    logs, load_start, started = Path(argv[0]), float(argv[1]), float(argv[2])
    minutes = (time.time() - started) / 60
    lines = [
        "# Sanitizer record",
        "",
        "Written by `runtime/check/run_sanitized.sh` at the end of a clean run (every figure "
        "below is from its logs; nothing is edited by hand).",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {cpu()} ({platform.machine()}), {os.cpu_count()} cores  ",
        f"Load: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end (1-minute "
        f"average); the run took {minutes:.0f} min  ",
        f"Compilers: {version(['g++', '--version'])}; "
        f"{version(['aarch64-linux-gnu-g++', '--version'])}; qemu: "
        f"{version(['qemu-aarch64', '--version'])}  ",
        f"Host runtimes: {host_versions()}",
        "",
    ]
    for name, title, sanitized in STEPS:
        path = logs / name
        lines += [f"## {title}", ""]
        if not path.is_file():
            lines += ["Not run (the cross compiler or qemu-aarch64 is not installed).", ""]
            continue
        summary = [ln.rstrip() for ln in path.read_text().splitlines() if SUMMARY.match(ln)]
        lines += ["```", *summary, "```", "No sanitizer report." if sanitized else "", ""]
    pytest_log = (logs / "pytest.txt").read_text().splitlines()
    result = next((ln for ln in reversed(pytest_log) if re.search(r"\d+ passed", ln)), "?")
    lines += [
        "## Runtime tests with the sanitized delegate in every installed host runtime",
        "",
        "`tests/runtime/test_interpreter.py test_decode_weights.py test_hardening.py "
        "test_delegate.py test_abi.py`, LD_PRELOAD of libasan + libubsan, "
        "`BITLITE_LIBRARY` = the ASan + UBSan build:",
        "",
        f"    {result.strip('= ')}",
        "",
        "No sanitizer report.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""benchmarks/fuzz.py's argument checks (the runs themselves take hours)."""

from __future__ import annotations

import pytest

from benchmarks import fuzz


@pytest.mark.parametrize("argv", [["ops", "--runs", "0"], ["models", "--runs", "-5"],
                                  ["models", "--batch", "0"], ["models", "--minutes", "0"]])
def test_bad_arguments_exit_2_before_anything_runs(argv, capsys, monkeypatch):
    monkeypatch.setattr(fuzz, "run_ops", lambda *a: pytest.fail("ran"))
    monkeypatch.setattr(fuzz, "run_models", lambda *a: pytest.fail("ran"))
    assert fuzz.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _report(*frames: str) -> str:
    lines = ["==1==ERROR: AddressSanitizer: SEGV on unknown address 0x000000000000"]
    lines += [f"    #{i} 0x7f5fb450eaa4 in {f}" for i, f in enumerate(frames)]
    return "\n".join(lines) + "\nSUMMARY: AddressSanitizer: SEGV\n"


LIBC = "__memcpy_avx_unaligned (/lib/x86_64-linux-gnu/libc.so.6+0x1)"
ASAN = "__asan_memcpy (/usr/lib/x86_64-linux-gnu/libasan.so.8+0x2)"
OURS = "bitlite::BitpackFloat(float const*, long) /work/x/runtime/src/simple_ops.cc:20:5"
OURS_LIB = "bitlite::Foo() (/work/x/runtime/build/asan/libbitlite_delegate.so+0x3)"
HOST = ("tflite::xnnpack::Subgraph::VisitNode(...) (/root/site-packages/ai_edge_litert/"
        "libpywrap_litert_common.so+0x50eaa4)")
PYTHON = "cfunction_call Objects/methodobject.c:542"


@pytest.mark.parametrize(("report", "site"), [
    (_report(LIBC, ASAN, OURS, HOST, PYTHON), "bitlite"),  # innermost known frame: ours
    (_report(OURS_LIB, PYTHON), "bitlite"),
    (_report(HOST, PYTHON), "host"),  # the saved LiteRT crashes
    (_report(LIBC, HOST, OURS_LIB, HOST), "host, called from bitlite"),
    ("Traceback (most recent call last):\n  File ...\nOverflowError: float too large", "harness"),
    (_report(LIBC, PYTHON), "unknown"),
    ("", "unknown"),
])
def test_crash_site_names_the_innermost_bitlite_or_host_frame(report, site):
    assert fuzz.crash_site(report) == site

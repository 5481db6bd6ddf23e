#!/usr/bin/env bash
# The runtime under AddressSanitizer + UndefinedBehaviorSanitizer: the standalone kernel
# check (then again under ThreadSanitizer, and cross-built for AArch64 under qemu), then
# the LCE model matrix (tests/runtime/test_interpreter.py), the packed-weight decoder tests
# (test_decode_weights.py), the hostile-model tests (test_hardening.py: sparse constants,
# out-of-range quantization...) and the delegate tests (test_delegate.py, test_abi.py)
# with an ASan/UBSan build of the delegate (libbitlite_delegate.so) loaded by every
# installed host runtime, the sanitizer runtimes preloaded into Python. Run from the
# repository root:
#   runtime/check/run_sanitized.sh [extra pytest arguments]
# Any sanitizer report aborts the process. A clean run ends by writing
# runtime/check/RESULTS.md (runtime/check/results.py): every figure of this run, with
# the date, machine, load and tool versions; a failing run leaves it untouched.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/runtime/build/asan"
logs="$out/logs"
mkdir -p "$logs"
rm -f "$logs"/*.txt
load_start="$(cut -d' ' -f1 /proc/loadavg)"
started="$(date +%s)"
cd "$root/runtime"
python -m bitlite_runtime.build --sanitize --out "$out" >/dev/null
check="$(python -c "from bitlite_runtime import build; print(build.build_kernel_check('host', '$out', sanitize=True))")"
"$check" 300 | tee "$logs/kernel_check_asan.txt"
# The convolution thread pool under ThreadSanitizer (threads 1-4 on every config).
tsan="$(python -c "from bitlite_runtime import build; print(build.build_kernel_check('host', '$out', sanitize='thread'))")"
TSAN_OPTIONS="halt_on_error=1" "$tsan" 100 | tee "$logs/kernel_check_tsan.txt"
# The AArch64 NEON kernels under qemu-user, when the cross compiler and qemu are here.
if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
  a64="$(python -c "from bitlite_runtime import build; print(build.build_kernel_check('aarch64', '$out/aarch64'))")"
  qemu-aarch64 "$a64" 200 | tee "$logs/kernel_check_aarch64.txt"
fi
cd "$root"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export BITLITE_LIBRARY="$out/libbitlite_delegate.so"
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
  python -m pytest tests/runtime/test_interpreter.py tests/runtime/test_decode_weights.py \
  tests/runtime/test_hardening.py tests/runtime/test_delegate.py tests/runtime/test_abi.py \
  -q -p no:cacheprovider "$@" | tee "$logs/pytest.txt"
unset BITLITE_LIBRARY ASAN_OPTIONS UBSAN_OPTIONS
python runtime/check/results.py "$logs" "$load_start" "$started" > runtime/check/RESULTS.md
echo "wrote runtime/check/RESULTS.md"

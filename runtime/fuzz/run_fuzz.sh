#!/usr/bin/env bash
# The op-level fuzzer (fuzz_prepare.cc: every op of runtime/src/ops.cc on fuzzer-built
# nodes and tensors, optimized kernels compared with the reference) under libFuzzer with
# ASan + UBSan. Usage: runtime/fuzz/run_fuzz.sh [runs] [seconds]   (default 10000000
# executions; with seconds, libFuzzer stops after that long if the runs are not done)
# Needs clang and libFuzzer (Debian: apt-get install clang libfuzzer-14-dev). Writes
# runtime/build/fuzz/ (ignored) and prints libFuzzer's final stats;
# `python -m benchmarks.fuzz ops` runs it and writes the table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-10000000}"
seconds="${2:-0}"
out="$here/../build/fuzz"
src="$here/../src"
rm -rf "$out/corpus"
mkdir -p "$out/corpus"
clang="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$clang" ]; then
  echo "error: clang++ not found (apt-get install clang libfuzzer-14-dev)" >&2
  exit 2
fi
flags=(-std=c++17 -g -O1 -ffp-contract=off -pthread -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined)
# The compute loops (GEMM kernels, bit packing, the thread pool, the convolution and its
# reference) keep edge coverage but not comparison tracing: its hooks on their loop
# bounds were half of the fuzzer's time (perf), and the constants worth learning are
# compared in the parsers and planners (ops.cc, flexbuffer.cc, ...), traced in full.
compute='^(bgemm_.*|bitpack_.*|thread_pool|dispatch|bconv)\.cc$'
mkdir -p "$out/obj"
objs=()
for f in "$here/fuzz_prepare.cc" "$src"/*.cc; do
  name="$(basename "$f")"
  [ "$name" = delegate.cc ] && continue
  extra=()
  [[ "$name" =~ $compute ]] && extra=(-fno-sanitize-coverage=trace-cmp)
  "$clang" "${flags[@]}" "${extra[@]}" -Wno-unknown-warning-option -c "$f" \
    -o "$out/obj/${name%.cc}.o"
  objs+=("$out/obj/${name%.cc}.o")
done
"$clang" "${flags[@]}" "${objs[@]}" -o "$out/fuzz_prepare"
# Seeds: one valid node per op and output type (descriptor layout: fuzz_prepare.cc).
python3 - "$out/corpus" <<'PY'
import struct
import sys
from pathlib import Path

from flatbuffers import flexbuffers

out = Path(sys.argv[1])


def dim(d):  # inverse of Dim() in fuzz_prepare.cc
    return d - 1 if d <= 12 else 200 + (d - 13) // 3


def desc(dims=(), d0=0, d1=0, mode=0):
    dims = [dim(d) for d in dims] + [0] * (4 - len(dims))
    return bytes([d0, d1, 0, *dims, mode])


def seed(name, op, descs, options=None, pool=b"\x5a\xa5\x3c\xc3"):
    inputs, output = descs[:-1], descs[-1]
    head = bytes([op]) + b"".join(inputs + [desc()] * (5 - len(inputs))) + output
    opts = bytes(flexbuffers.Dumps(options)) if options else b""
    (out / name).write_bytes(head + bytes([len(opts)]) + opts + pool)


conv = dict(channels_in=64, dilation_height_factor=1, dilation_width_factor=1,
            fused_activation_function=0, pad_values=1, padding=0, stride_height=1, stride_width=1)
floats = struct.pack("<4f", 0.5, -1.25, 2.0, 0.75)
bconv_in = [desc((1, 6, 5, 2)), desc((8, 3, 3, 2)), desc((8,)), desc((8,)), desc((8,))]
seed("quantize_f32", 0, [desc((3, 40)), desc((3, 2))], pool=floats)
seed("quantize_int8", 0, [desc((2, 33), d1=160 + 3), desc((2, 2))])  # kAnyType[3] = int8
seed("dequantize_f32", 1, [desc((3, 2)), desc((3, 64))])
seed("dequantize_int8", 1, [desc((3, 2)), desc((3, 40), d0=4, d1=121)])
seed("bconv_float", 2, bconv_in + [desc((1, 6, 5, 8))], conv, floats)
seed("bconv_int8", 2, bconv_in + [desc((1, 6, 5, 8), d0=4, d1=121)], conv, floats)
seed("bconv_packed", 2, bconv_in + [desc((1, 6, 5, 1), d1=122)], conv)
seed("bconv_zero_pad_s2", 2, bconv_in + [desc((1, 3, 3, 8))],
     {**conv, "pad_values": 0, "stride_width": 2}, floats)
seed("bconv_valid_d2", 2, [desc((1, 9, 9, 1)), desc((8, 3, 3, 1)), desc((8,)), desc((8,)),
                          desc((8,))] + [desc((1, 5, 5, 8))],
     {**conv, "channels_in": 31, "padding": 1, "dilation_height_factor": 2}, floats)
seed("bconv_groups", 2, [desc((1, 5, 5, 2)), desc((8, 3, 3, 1)), desc((8,)), desc((8,)),
                        desc((8,))] + [desc((1, 5, 5, 8))], conv, floats)
seed("maxpool", 3, [desc((1, 6, 6, 2)), desc((1, 3, 3, 2))],
     dict(filter_height=2, filter_width=2, padding=1, stride_height=2, stride_width=2))
# Codes (9 bytes of 2-bit codes below 3), level table and scales all read the pool.
seed("decode_k2", 4, [desc((9,)), desc((3,)), desc((4,)), desc((4, 9))],
     dict(axis=0, bits=2), pool=b"\x16" * 16)
PY
rc=0
"$out/fuzz_prepare" -runs="$runs" -max_total_time="$seconds" -max_len=1024 -print_final_stats=1 \
  -artifact_prefix="$out/" "$out/corpus" > "$out/fuzz.log" 2>&1 || rc=$?
grep -E "^(stat::|Done|INFO: seed corpus|INFO: .* inputs|==[0-9]+==ERROR|SUMMARY|.*differs|.*without a message|.*invoke refused)" "$out/fuzz.log" | tail -n 40 || true
echo "exit status: $rc (non-zero: a crash; the input is saved under $out/)"
exit "$rc"

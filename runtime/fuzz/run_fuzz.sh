#!/usr/bin/env bash
# Build the libFuzzer harness (clang, ASan + UBSan) and fuzz the options parser and
# prepare. Usage: runtime/fuzz/run_fuzz.sh [runs]   (default 10000000)
# BITLITE_FUZZ_EVAL=1 also runs every accepted configuration (slower per execution).
# Needs: apt-get install clang libclang-rt-14-dev. Writes build/fuzz/ (ignored) and
# prints libFuzzer's final stats line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-10000000}"
out="$here/../build/fuzz"
mkdir -p "$out/corpus"
src="$here/../src"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "$here/fuzz_prepare.cc" "$src/bconv.cc" "$src/bgemm_generic.cc" "$src/bgemm_x86.cc" "$src/bgemm_avx512_4x16.cc" "$src/thread_pool.cc" "$src/bitpack_x86.cc" "$src/bgemm_avx2_2x8.cc" "$src/bgemm_neon_4x4x16.cc" "$src/bitpack_neon.cc" \
  "$src/dispatch.cc" "$src/flexbuffer.cc" "$src/simple_ops.cc" "$src/decode_weights.cc" \
  -o "$out/fuzz_prepare"
# Seeds: LCE-shaped options for both ops and a packed-weights case (written with the
# flatbuffers package). The first byte selects the op: 0 mod 3 bconv, 1 maxpool, 2 decode.
python3 - "$out/corpus" <<'PY'
import sys
from pathlib import Path
from flatbuffers import flexbuffers
out = Path(sys.argv[1])
conv = dict(channels_in=64, dilation_height_factor=1, dilation_width_factor=1,
            fused_activation_function=0, pad_values=1, padding=0, stride_height=1, stride_width=1)
seeds = {
    "bconv_same": (b"\x00\x04\x08\x08\x01\x07\x02\x02\x01", conv),
    "bconv_valid_d2": (b"\x03\x08\x08\x08\x01\x1f\x02\x02\x01",
                       {**conv, "padding": 1, "dilation_height_factor": 2, "channels_in": 31}),
    "bconv_zero_pad": (b"\x06\x06\x05\x05\x03\x09\x02\x02\x00",
                       {**conv, "pad_values": 0, "channels_in": 70, "stride_width": 2}),
    "bmaxpool": (b"\x01\x07\x08\x08\x02\x00\x00\x00\x00",
                 dict(filter_height=2, filter_width=3, padding=0, stride_height=2, stride_width=1)),
}
for name, (prefix, options) in seeds.items():
    (out / name).write_bytes(prefix + bytes(flexbuffers.Dumps(options)))
# 2-bit codes, axis 0, rank 2, dims 4 x 9 (36 weights = 9 bytes), 3 levels, 4 scales
(out / "decode_ternary").write_bytes(b"\x02\x02\x00\x01\x04\x08\x00\x03\x04" + bytes(
    [0b10010100, 0b00100001] * 4 + [0b01]))
PY
rc=0
"$out/fuzz_prepare" -runs="$runs" -max_len=512 -print_final_stats=1 \
  -artifact_prefix="$out/" "$out/corpus" > "$out/fuzz.log" 2>&1 || rc=$?
grep -E "^(stat::|Done|INFO: Seed|==[0-9]+==ERROR|SUMMARY|artifact_prefix)" "$out/fuzz.log" || true
echo "exit status: $rc (non-zero: a crash; the input is saved under $out/)"
exit "$rc"

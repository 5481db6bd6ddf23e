// AArch64 NEON binary GEMM with bitpacked output, for BgemmNeonBlocked's full
// 16-filter blocks: 4 pixels x 8 filter registers per tile (the block as 2
// tiles), the threshold compare and the bit packing in the same asm block.
//
// Per 128-bit K step of a tile: one LD1 {4 regs} of patches, two of filters,
// then per pixel and pair of filter registers EOR, EOR, CNT, CNT, ADDP.16B
// (adjacent byte counts of both registers in one vector, <= 16 a byte), ADD
// into 8-bit accumulators: 99 instructions per 4096 binary MACs (0.0242; the
// 4 x 4 tile: 50 per 2048). Half as many accumulators as products, so one
// reduction (UADDLP, 3 ADDPs a pixel: 28) serves 32 sums, and the byte
// accumulators last 15 steps: longer K runs in periods of <= 15 steps whose
// 16-bit sums add up in memory.
//
// The sums (<= 255 * 128 = 32640) are compared with thresholds clamped to
// [-1, K] in signed 16-bit lanes (the same comparisons: every sum lies in
// [0, K]); each lane's mask ANDed with its filter's bit, and ADDPs (disjoint
// bits: add is or) leave pixel p's 16 output bits in lane p.
#if defined(__aarch64__)

#include <cstdint>

#include "bgemm.h"

namespace bitlite {
namespace {

// Accumulator v(16 + 4p + k): bytes 0-7 count pixel p (v(p)) against filter
// register 2k (v(4 + 2k)) in adjacent byte pairs, bytes 8-15 against register
// 2k + 1. Temporaries v12, v13; the FIRST step writes the accumulators.
#define BITLITE_B8_PAIR(p, acc, f0, f1) \
  "eor v12.16b, v" #p ".16b, v" #f0 ".16b\n" \
  "eor v13.16b, v" #p ".16b, v" #f1 ".16b\n" \
  "cnt v12.16b, v12.16b\n" \
  "cnt v13.16b, v13.16b\n" \
  "addp v12.16b, v12.16b, v13.16b\n" \
  "add v" #acc ".16b, v" #acc ".16b, v12.16b\n"
#define BITLITE_B8_PAIR_FIRST(p, acc, f0, f1) \
  "eor v12.16b, v" #p ".16b, v" #f0 ".16b\n" \
  "eor v13.16b, v" #p ".16b, v" #f1 ".16b\n" \
  "cnt v12.16b, v12.16b\n" \
  "cnt v13.16b, v13.16b\n" \
  "addp v" #acc ".16b, v12.16b, v13.16b\n"
#define BITLITE_B8_PIXEL(PAIR, p, a0, a1, a2, a3) \
  PAIR(p, a0, 4, 5) PAIR(p, a1, 6, 7) PAIR(p, a2, 8, 9) PAIR(p, a3, 10, 11)
#define BITLITE_B8_BODY(PAIR) \
  BITLITE_B8_PIXEL(PAIR, 0, 16, 17, 18, 19) \
  BITLITE_B8_PIXEL(PAIR, 1, 20, 21, 22, 23) \
  BITLITE_B8_PIXEL(PAIR, 2, 24, 25, 26, 27) \
  BITLITE_B8_PIXEL(PAIR, 3, 28, 29, 30, 31)
// One K chunk: 4 pixels' 128 bits (interleaved), the tile's 8 filter registers
// (128 of the block's 256 bytes; fstride skips the other tile's half).
#define BITLITE_B8_LOADS \
  "ld1 {v0.16b-v3.16b}, [%[pa]], #64\n" \
  "ld1 {v4.16b-v7.16b}, [%[pf]], #64\n" \
  "ld1 {v8.16b-v11.16b}, [%[pf]], %[fstride]\n"
#define BITLITE_B8_FIRST BITLITE_B8_LOADS BITLITE_B8_BODY(BITLITE_B8_PAIR_FIRST)
#define BITLITE_B8_STEP BITLITE_B8_LOADS BITLITE_B8_BODY(BITLITE_B8_PAIR)
#define BITLITE_B8_STEP_X2 BITLITE_B8_STEP BITLITE_B8_STEP
#define BITLITE_B8_STEP_X4 BITLITE_B8_STEP_X2 BITLITE_B8_STEP_X2

// A period of n + 1 <= 15 steps, straight-line: the first, then 8, 4, 2 and 1
// as n's bits say (no loop counter).
#define BITLITE_B8_STEPS \
  BITLITE_B8_FIRST \
  "tbz %[n], #3, 1f\n" \
  BITLITE_B8_STEP_X4 \
  BITLITE_B8_STEP_X4 \
  "1:\n" \
  "tbz %[n], #2, 2f\n" \
  BITLITE_B8_STEP_X4 \
  "2:\n" \
  "tbz %[n], #1, 3f\n" \
  BITLITE_B8_STEP_X2 \
  "3:\n" \
  "tbz %[n], #0, 4f\n" \
  BITLITE_B8_STEP \
  "4:\n"

// Pixel p's accumulators -> v(out) lane l = its sum against filter register
// l: UADDLP (lanes 0-3 register 2k, 4-7 register 2k + 1), then ADDPs.
#define BITLITE_B8_REDUCE_PIXEL(a, b, c, d, out) \
  "uaddlp v" #a ".8h, v" #a ".16b\n" \
  "uaddlp v" #b ".8h, v" #b ".16b\n" \
  "uaddlp v" #c ".8h, v" #c ".16b\n" \
  "uaddlp v" #d ".8h, v" #d ".16b\n" \
  "addp v" #a ".8h, v" #a ".8h, v" #b ".8h\n" \
  "addp v" #c ".8h, v" #c ".8h, v" #d ".8h\n" \
  "addp v" #out ".8h, v" #a ".8h, v" #c ".8h\n"
#define BITLITE_B8_REDUCE \
  BITLITE_B8_REDUCE_PIXEL(16, 17, 18, 19, 16) \
  BITLITE_B8_REDUCE_PIXEL(20, 21, 22, 23, 17) \
  BITLITE_B8_REDUCE_PIXEL(24, 25, 26, 27, 18) \
  BITLITE_B8_REDUCE_PIXEL(28, 29, 30, 31, 19)

// Sums v16-v19 (pixels 0-3) against the tile's thresholds (v20) -> masks ANDed
// with the filters' bits (v21) -> two ADDP levels: lanes 2p, 2p + 1 hold pixel
// p's bits of this tile.
#define BITLITE_B8_BITS(table) \
  "ldp q20, q21, " table "\n" \
  "cmgt v16.8h, v16.8h, v20.8h\n" \
  "cmgt v17.8h, v17.8h, v20.8h\n" \
  "cmgt v18.8h, v18.8h, v20.8h\n" \
  "cmgt v19.8h, v19.8h, v20.8h\n" \
  "and v16.16b, v16.16b, v21.16b\n" \
  "and v17.16b, v17.16b, v21.16b\n" \
  "and v18.16b, v18.16b, v21.16b\n" \
  "and v19.16b, v19.16b, v21.16b\n" \
  "addp v16.8h, v16.8h, v17.8h\n" \
  "addp v18.8h, v18.8h, v19.8h\n"
// The first tile's bits wait in v14 (no step touches it); the second adds
// them, one more ADDP leaves pixel p's 16 bits in lane p, stored p strides on.
#define BITLITE_B8_EPI_FIRST \
  BITLITE_B8_BITS("[%[table]]") \
  "addp v14.8h, v16.8h, v18.8h\n"
#define BITLITE_B8_EPI_SECOND \
  BITLITE_B8_BITS("[%[table], #32]") \
  "addp v16.8h, v16.8h, v18.8h\n" \
  "add v16.8h, v16.8h, v14.8h\n" \
  "addp v16.8h, v16.8h, v16.8h\n" \
  "st1 {v16.h}[0], [%[dst]], %[dstride]\n" \
  "st1 {v16.h}[1], [%[dst]], %[dstride]\n" \
  "st1 {v16.h}[2], [%[dst]], %[dstride]\n" \
  "st1 {v16.h}[3], [%[dst]], %[dstride]\n"

// A tile of K <= 15 steps (n = steps - 1): one period.
#define BITLITE_B8_TILE_ONE(offset, EPI) \
  "mov %[pa], %[pa0]\n" \
  "add %[pf], %[fb], #" #offset "\n" \
  BITLITE_B8_STEPS \
  BITLITE_B8_REDUCE \
  EPI
// A tile of a longer K: periods of <= 15 steps, their sums added in `sums`.
#define BITLITE_B8_TILE_PERIODS(offset, EPI) \
  "mov %[pa], %[pa0]\n" \
  "add %[pf], %[fb], #" #offset "\n" \
  "mov %[rem], %[chunks]\n" \
  "mov %[first], #1\n" \
  "5:\n" \
  "mov %[n], #15\n" \
  "cmp %[rem], %[n]\n" \
  "csel %[n], %[rem], %[n], lo\n" \
  "sub %[rem], %[rem], %[n]\n" \
  "sub %[n], %[n], #1\n" \
  BITLITE_B8_STEPS \
  BITLITE_B8_REDUCE \
  "cbnz %[first], 6f\n" \
  "ld1 {v20.8h-v23.8h}, [%[sums]]\n" \
  "add v16.8h, v16.8h, v20.8h\n" \
  "add v17.8h, v17.8h, v21.8h\n" \
  "add v18.8h, v18.8h, v22.8h\n" \
  "add v19.8h, v19.8h, v23.8h\n" \
  "6:\n" \
  "cbz %[rem], 7f\n" \
  "st1 {v16.8h-v19.8h}, [%[sums]]\n" \
  "mov %[first], #0\n" \
  "b 5b\n" \
  "7:\n" \
  EPI

// Every group of 4 pixels: both tiles (filter vectors 0-1, then 2-3), then on
// to the next group's patches.
#define BITLITE_B8_GROUPS(TILE)                                                            \
  __asm__ volatile(                                                                       \
      "0:\n"                                                                              \
      TILE(0, BITLITE_B8_EPI_FIRST)                                                       \
      TILE(128, BITLITE_B8_EPI_SECOND)                                                    \
      "add %[pa0], %[pa0], %[gstride]\n"                                                  \
      "subs %[groups], %[groups], #1\n"                                                   \
      "b.ne 0b\n"                                                                         \
      : [pa] "=&r"(pa), [pf] "=&r"(pf), [rem] "=&r"(rem), [first] "=&r"(first),           \
        [n] "+r"(n), [pa0] "+r"(pa0), [groups] "+r"(groups), [dst] "+r"(dst)              \
      : [fb] "r"(fb), [chunks] "r"(chunks), [fstride] "r"(fstride),                       \
        [gstride] "r"(gstride), [dstride] "r"(dstride), [table] "r"(table),               \
        [sums] "r"(sums)                                                                  \
      : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12",   \
        "v13", "v14", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24",       \
        "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc")

// The block's thresholds and bits in the tiles' lane order: rows 2t, 2t + 1 =
// tile t's thresholds and bit weights, lane l = filter register l of the tile,
// i.e. blocked-layout vector 2t + l / 4, lane l % 4: filter 4 (l % 4) + 2t + l / 4.
void Table(const int32_t* thresholds, int chunks, int16_t table[4][8]) {
  const int32_t k_bits = 128 * chunks;
  for (int t = 0; t < 2; ++t)
    for (int l = 0; l < 8; ++l) {
      const int f = 4 * (l % 4) + 2 * t + l / 4;
      const int32_t v = thresholds[f];
      table[2 * t][l] = static_cast<int16_t>(v < -1 ? -1 : v > k_bits ? k_bits : v);
      table[2 * t + 1][l] = static_cast<int16_t>(1u << f);
    }
}

}  // namespace

void BgemmNeonBits4x8(const uint32_t* patches, int n_groups, const uint32_t* block, int kwords,
                      const int32_t* thresholds, uint16_t* bits, long bits_stride) {
  const long chunks = kwords / kKWordAlign;
  alignas(16) int16_t table[4][8];
  alignas(16) uint16_t sums[4][8];
  Table(thresholds, static_cast<int>(chunks), table);
  const uint8_t* pa0 = reinterpret_cast<const uint8_t*>(patches);
  const uint8_t* fb = reinterpret_cast<const uint8_t*>(block);
  const long fstride = 256 - 64, gstride = 64 * chunks, dstride = 2 * bits_stride;
  long n = chunks - 1, groups = n_groups;  // n: steps - 1 of the one period (K <= 15)
  uint16_t* dst = bits;
  const uint8_t *pa, *pf;
  long rem, first;
  if (chunks <= 15)
    BITLITE_B8_GROUPS(BITLITE_B8_TILE_ONE);
  else
    BITLITE_B8_GROUPS(BITLITE_B8_TILE_PERIODS);
}

}  // namespace bitlite

#endif  // __aarch64__

// AArch64 NEON binary GEMM over the blocked 16x4 filter layout and 4-pixel
// interleaved patches: 4 pixels x 4 filters per tile, one block of 16 filters
// as 4 such tiles (vector i of the block holds filters i, 4+i, 8+i, 12+i).
//
// Per 128-bit K step: one LD1 {4 regs} of patches, one of filters, then 16 x
// (EOR, CNT, ADD.16B) into 8-bit accumulators: 3 instructions per 128 binary
// MACs plus 2 loads per 2048 MACs; the loop (inline assembly) is unrolled
// twice so its branch and counter are shared by 4096 MACs. A byte gains at
// most 8 per step, so the accumulators are reduced (UADDLP + ADDP, in
// registers) to uint32 totals every 30 steps. Bitpacked output of whole groups
// and full blocks goes to bgemm_neon_4x8_bits.cc (BgemmNeonBits4x8) instead;
// this file serves partial groups and blocks, and int32 / float outputs.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "bgemm.h"

namespace bitlite {
namespace {

constexpr int kFlushSteps = 30;  // 30 * 8 = 240 <= 255 (even: whole unrolled pairs)

// One K step of the 4 x 4 tile: accumulator v(16 + 4p + j) += popcount(pixel p
// XOR filter j); the FIRST variant starts the accumulators (CNT straight into
// them: no zeroing, no add).
#define BITLITE_NEON_FIRST4 \
  "ld1 {v0.16b-v3.16b}, [%[pa]], #64\n" \
  "ld1 {v4.16b-v7.16b}, [%[pf]], %[fstride]\n" \
  "eor v8.16b, v0.16b, v4.16b\n" \
  "cnt v16.16b, v8.16b\n" \
  "eor v9.16b, v0.16b, v5.16b\n" \
  "cnt v17.16b, v9.16b\n" \
  "eor v10.16b, v0.16b, v6.16b\n" \
  "cnt v18.16b, v10.16b\n" \
  "eor v11.16b, v0.16b, v7.16b\n" \
  "cnt v19.16b, v11.16b\n" \
  "eor v8.16b, v1.16b, v4.16b\n" \
  "cnt v20.16b, v8.16b\n" \
  "eor v9.16b, v1.16b, v5.16b\n" \
  "cnt v21.16b, v9.16b\n" \
  "eor v10.16b, v1.16b, v6.16b\n" \
  "cnt v22.16b, v10.16b\n" \
  "eor v11.16b, v1.16b, v7.16b\n" \
  "cnt v23.16b, v11.16b\n" \
  "eor v8.16b, v2.16b, v4.16b\n" \
  "cnt v24.16b, v8.16b\n" \
  "eor v9.16b, v2.16b, v5.16b\n" \
  "cnt v25.16b, v9.16b\n" \
  "eor v10.16b, v2.16b, v6.16b\n" \
  "cnt v26.16b, v10.16b\n" \
  "eor v11.16b, v2.16b, v7.16b\n" \
  "cnt v27.16b, v11.16b\n" \
  "eor v8.16b, v3.16b, v4.16b\n" \
  "cnt v28.16b, v8.16b\n" \
  "eor v9.16b, v3.16b, v5.16b\n" \
  "cnt v29.16b, v9.16b\n" \
  "eor v10.16b, v3.16b, v6.16b\n" \
  "cnt v30.16b, v10.16b\n" \
  "eor v11.16b, v3.16b, v7.16b\n" \
  "cnt v31.16b, v11.16b\n"
#define BITLITE_NEON_STEP4 \
  "ld1 {v0.16b-v3.16b}, [%[pa]], #64\n" \
  "ld1 {v4.16b-v7.16b}, [%[pf]], %[fstride]\n" \
  "eor v8.16b, v0.16b, v4.16b\n" \
  "cnt v8.16b, v8.16b\n" \
  "add v16.16b, v16.16b, v8.16b\n" \
  "eor v9.16b, v0.16b, v5.16b\n" \
  "cnt v9.16b, v9.16b\n" \
  "add v17.16b, v17.16b, v9.16b\n" \
  "eor v10.16b, v0.16b, v6.16b\n" \
  "cnt v10.16b, v10.16b\n" \
  "add v18.16b, v18.16b, v10.16b\n" \
  "eor v11.16b, v0.16b, v7.16b\n" \
  "cnt v11.16b, v11.16b\n" \
  "add v19.16b, v19.16b, v11.16b\n" \
  "eor v8.16b, v1.16b, v4.16b\n" \
  "cnt v8.16b, v8.16b\n" \
  "add v20.16b, v20.16b, v8.16b\n" \
  "eor v9.16b, v1.16b, v5.16b\n" \
  "cnt v9.16b, v9.16b\n" \
  "add v21.16b, v21.16b, v9.16b\n" \
  "eor v10.16b, v1.16b, v6.16b\n" \
  "cnt v10.16b, v10.16b\n" \
  "add v22.16b, v22.16b, v10.16b\n" \
  "eor v11.16b, v1.16b, v7.16b\n" \
  "cnt v11.16b, v11.16b\n" \
  "add v23.16b, v23.16b, v11.16b\n" \
  "eor v8.16b, v2.16b, v4.16b\n" \
  "cnt v8.16b, v8.16b\n" \
  "add v24.16b, v24.16b, v8.16b\n" \
  "eor v9.16b, v2.16b, v5.16b\n" \
  "cnt v9.16b, v9.16b\n" \
  "add v25.16b, v25.16b, v9.16b\n" \
  "eor v10.16b, v2.16b, v6.16b\n" \
  "cnt v10.16b, v10.16b\n" \
  "add v26.16b, v26.16b, v10.16b\n" \
  "eor v11.16b, v2.16b, v7.16b\n" \
  "cnt v11.16b, v11.16b\n" \
  "add v27.16b, v27.16b, v11.16b\n" \
  "eor v8.16b, v3.16b, v4.16b\n" \
  "cnt v8.16b, v8.16b\n" \
  "add v28.16b, v28.16b, v8.16b\n" \
  "eor v9.16b, v3.16b, v5.16b\n" \
  "cnt v9.16b, v9.16b\n" \
  "add v29.16b, v29.16b, v9.16b\n" \
  "eor v10.16b, v3.16b, v6.16b\n" \
  "cnt v10.16b, v10.16b\n" \
  "add v30.16b, v30.16b, v10.16b\n" \
  "eor v11.16b, v3.16b, v7.16b\n" \
  "cnt v11.16b, v11.16b\n" \
  "add v31.16b, v31.16b, v11.16b\n"

// Byte accumulators of pixel p (v(16 + 4p) .. + 3) -> v(16 + 4p).4s, lane j =
// filter j: UADDLP to 16 bits, two ADDP levels, UADDLP to 32 bits (<= 30 steps
// of <= 8 per byte: no overflow at any level).
#define BITLITE_NEON_REDUCE4 \
  "uaddlp v16.8h, v16.16b\n" \
  "uaddlp v17.8h, v17.16b\n" \
  "uaddlp v18.8h, v18.16b\n" \
  "uaddlp v19.8h, v19.16b\n" \
  "addp v16.8h, v16.8h, v17.8h\n" \
  "addp v18.8h, v18.8h, v19.8h\n" \
  "addp v16.8h, v16.8h, v18.8h\n" \
  "uaddlp v16.4s, v16.8h\n" \
  "uaddlp v20.8h, v20.16b\n" \
  "uaddlp v21.8h, v21.16b\n" \
  "uaddlp v22.8h, v22.16b\n" \
  "uaddlp v23.8h, v23.16b\n" \
  "addp v20.8h, v20.8h, v21.8h\n" \
  "addp v22.8h, v22.8h, v23.8h\n" \
  "addp v20.8h, v20.8h, v22.8h\n" \
  "uaddlp v20.4s, v20.8h\n" \
  "uaddlp v24.8h, v24.16b\n" \
  "uaddlp v25.8h, v25.16b\n" \
  "uaddlp v26.8h, v26.16b\n" \
  "uaddlp v27.8h, v27.16b\n" \
  "addp v24.8h, v24.8h, v25.8h\n" \
  "addp v26.8h, v26.8h, v27.8h\n" \
  "addp v24.8h, v24.8h, v26.8h\n" \
  "uaddlp v24.4s, v24.8h\n" \
  "uaddlp v28.8h, v28.16b\n" \
  "uaddlp v29.8h, v29.16b\n" \
  "uaddlp v30.8h, v30.16b\n" \
  "uaddlp v31.8h, v31.16b\n" \
  "addp v28.8h, v28.8h, v29.8h\n" \
  "addp v30.8h, v30.8h, v31.8h\n" \
  "addp v28.8h, v28.8h, v30.8h\n" \
  "uaddlp v28.4s, v28.8h\n"

// The same for periods of at most 15 steps (bytes <= 120): pairs of bytes are
// added while still bytes (<= 240), saving 2 of the 8 instructions per pixel.
#define BITLITE_NEON_REDUCE4_SHORT_PIXEL(a, b, c, d) \
  "addp v" #a ".16b, v" #a ".16b, v" #b ".16b\n" \
  "addp v" #c ".16b, v" #c ".16b, v" #d ".16b\n" \
  "uaddlp v" #a ".8h, v" #a ".16b\n" \
  "uaddlp v" #c ".8h, v" #c ".16b\n" \
  "addp v" #a ".8h, v" #a ".8h, v" #c ".8h\n" \
  "uaddlp v" #a ".4s, v" #a ".8h\n"
#define BITLITE_NEON_REDUCE4_SHORT \
  BITLITE_NEON_REDUCE4_SHORT_PIXEL(16, 17, 18, 19) \
  BITLITE_NEON_REDUCE4_SHORT_PIXEL(20, 21, 22, 23) \
  BITLITE_NEON_REDUCE4_SHORT_PIXEL(24, 25, 26, 27) \
  BITLITE_NEON_REDUCE4_SHORT_PIXEL(28, 29, 30, 31)

constexpr int kShortSteps = 15;  // 15 * 8 * 2 = 240 <= 255

// `steps` (1..30) K steps of each of the block's 4 tiles (filter vector i at
// pf + 64 i), reduced in registers and stored as out[i][p][j] = disagreements
// of pixel p with filter register j of vector i. One asm block for all 4
// tiles: GCC 12's schedule of the same intrinsics loads both unrolled steps at
// once and spills half of the 16 accumulators inside the loop, and one call
// per tile cost ~20 instructions of call, argument and loop set-up each.
#define BITLITE_NEON_PERIOD(REDUCE)                                                          \
  __asm__ volatile(                                                                         \
      "mov %[t], #4\n"                                                                      \
      "0:\n"                                                                                \
      "mov %[pa], %[pa0]\n"                                                                 \
      "mov %[pf], %[pf0]\n"                                                                 \
      "mov %[pairs], %[pairs0]\n"                                                           \
      BITLITE_NEON_FIRST4                                                                   \
      "cbz %[pairs], 2f\n"                                                                  \
      "1:\n"                                                                                \
      BITLITE_NEON_STEP4                                                                    \
      BITLITE_NEON_STEP4                                                                    \
      "subs %[pairs], %[pairs], #1\n"                                                       \
      "b.ne 1b\n"                                                                           \
      "2:\n"                                                                                \
      "cbz %[odd], 3f\n"                                                                    \
      BITLITE_NEON_STEP4                                                                    \
      "3:\n"                                                                                \
      REDUCE                                                                                \
      "str q16, [%[out]]\n"                                                                 \
      "str q20, [%[out], #16]\n"                                                            \
      "str q24, [%[out], #32]\n"                                                            \
      "str q28, [%[out], #48]\n"                                                            \
      "add %[out], %[out], #64\n"                                                           \
      "add %[pf0], %[pf0], #64\n"                                                           \
      "subs %[t], %[t], #1\n"                                                               \
      "b.ne 0b\n"                                                                           \
      : [pa] "=&r"(pa), [pf] "=&r"(pf), [pairs] "=&r"(pairs), [t] "=&r"(t),                 \
        [pf0] "+r"(pf0), [out] "+r"(o)                                                      \
      : [pa0] "r"(pa0), [pairs0] "r"(pairs0), [odd] "r"(odd), [fstride] "r"(fstride)        \
      : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12",     \
        "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24",  \
        "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc")

inline void Period4(const uint8_t* pa0, const uint8_t* pf0, int steps, uint32_t out[4][4][4]) {
  const long pairs0 = (steps - 1) / 2;
  const long odd = (steps - 1) % 2;
  const long fstride = 256;  // bytes from one K chunk of a filter vector to the next
  const uint8_t *pa, *pf;
  long pairs, t;
  uint32_t* o = &out[0][0][0];
  if (steps <= kShortSteps)
    BITLITE_NEON_PERIOD(BITLITE_NEON_REDUCE4_SHORT);
  else
    BITLITE_NEON_PERIOD(BITLITE_NEON_REDUCE4);
}

// One K step of a lone pixel against 8 filters (vectors i and i + 1 of the
// block): accumulator v(16 + j) += popcount(pixel XOR filter register j).
#define BITLITE_NEON_FIRST1 \
  "ld1 {v0.16b}, [%[pa]], %[pstride]\n" \
  "ld1 {v4.16b-v7.16b}, [%[pf]], #64\n" \
  "ld1 {v8.16b-v11.16b}, [%[pf]], %[fstride]\n" \
  "eor v24.16b, v0.16b, v4.16b\n" \
  "cnt v16.16b, v24.16b\n" \
  "eor v25.16b, v0.16b, v5.16b\n" \
  "cnt v17.16b, v25.16b\n" \
  "eor v26.16b, v0.16b, v6.16b\n" \
  "cnt v18.16b, v26.16b\n" \
  "eor v27.16b, v0.16b, v7.16b\n" \
  "cnt v19.16b, v27.16b\n" \
  "eor v28.16b, v0.16b, v8.16b\n" \
  "cnt v20.16b, v28.16b\n" \
  "eor v29.16b, v0.16b, v9.16b\n" \
  "cnt v21.16b, v29.16b\n" \
  "eor v30.16b, v0.16b, v10.16b\n" \
  "cnt v22.16b, v30.16b\n" \
  "eor v31.16b, v0.16b, v11.16b\n" \
  "cnt v23.16b, v31.16b\n"
#define BITLITE_NEON_STEP1 \
  "ld1 {v0.16b}, [%[pa]], %[pstride]\n" \
  "ld1 {v4.16b-v7.16b}, [%[pf]], #64\n" \
  "ld1 {v8.16b-v11.16b}, [%[pf]], %[fstride]\n" \
  "eor v24.16b, v0.16b, v4.16b\n" \
  "cnt v24.16b, v24.16b\n" \
  "add v16.16b, v16.16b, v24.16b\n" \
  "eor v25.16b, v0.16b, v5.16b\n" \
  "cnt v25.16b, v25.16b\n" \
  "add v17.16b, v17.16b, v25.16b\n" \
  "eor v26.16b, v0.16b, v6.16b\n" \
  "cnt v26.16b, v26.16b\n" \
  "add v18.16b, v18.16b, v26.16b\n" \
  "eor v27.16b, v0.16b, v7.16b\n" \
  "cnt v27.16b, v27.16b\n" \
  "add v19.16b, v19.16b, v27.16b\n" \
  "eor v28.16b, v0.16b, v8.16b\n" \
  "cnt v28.16b, v28.16b\n" \
  "add v20.16b, v20.16b, v28.16b\n" \
  "eor v29.16b, v0.16b, v9.16b\n" \
  "cnt v29.16b, v29.16b\n" \
  "add v21.16b, v21.16b, v29.16b\n" \
  "eor v30.16b, v0.16b, v10.16b\n" \
  "cnt v30.16b, v30.16b\n" \
  "add v22.16b, v22.16b, v30.16b\n" \
  "eor v31.16b, v0.16b, v11.16b\n" \
  "cnt v31.16b, v31.16b\n" \
  "add v23.16b, v23.16b, v31.16b\n"

// The 1 x 8 variant of Period for a lone pixel (fully connected layers are
// one pixel: a 4 x 4 tile would count 3 padding rows): out[0] lane j = filter
// register j of vector i, out[1] the same for vector i + 1.
inline void Period1(const uint8_t* pa, const uint8_t* pf, int steps, uint32_t out[2][4]) {
  long n = steps - 1;
  const long fstride = 256 - 64;  // the second LD1 x4 already advanced 64 bytes
  const long pstride = 64;        // the pixel's next chunk (4-pixel interleaved rows)
  __asm__ volatile(
      BITLITE_NEON_FIRST1
      "cbz %[n], 2f\n"
      "1:\n"
      BITLITE_NEON_STEP1
      "subs %[n], %[n], #1\n"
      "b.ne 1b\n"
      "2:\n"
      "uaddlp v16.8h, v16.16b\n" "uaddlp v17.8h, v17.16b\n" "uaddlp v18.8h, v18.16b\n" "uaddlp v19.8h, v19.16b\n" "addp v16.8h, v16.8h, v17.8h\n" "addp v18.8h, v18.8h, v19.8h\n" "addp v16.8h, v16.8h, v18.8h\n" "uaddlp v16.4s, v16.8h\n" "uaddlp v20.8h, v20.16b\n" "uaddlp v21.8h, v21.16b\n" "uaddlp v22.8h, v22.16b\n" "uaddlp v23.8h, v23.16b\n" "addp v20.8h, v20.8h, v21.8h\n" "addp v22.8h, v22.8h, v23.8h\n" "addp v20.8h, v20.8h, v22.8h\n" "uaddlp v20.4s, v20.8h\n"
      "str q16, [%[out]]\n"
      "str q20, [%[out], #16]\n"
      : [pa] "+r"(pa), [pf] "+r"(pf), [n] "+r"(n)
      : [fstride] "r"(fstride), [pstride] "r"(pstride), [out] "r"(&out[0][0])
      : "v0", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v16", "v17", "v18", "v19",
        "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31",
        "memory", "cc");
}

// 4 pixels (interleaved chunks at pa) x the block's 16 filters (vector i's
// chunks at pf + 64 i, 256 bytes apart): t[i][p] lane j = disagreements of
// pixel p with filter register j of vector i.
inline void Tile4(const uint8_t* pa, const uint8_t* pf, int chunks, uint32x4_t t[4][4]) {
  if (chunks <= kFlushSteps) {  // one period: its sums go straight into t, no copy
    Period4(pa, pf, chunks, reinterpret_cast<uint32_t(*)[4][4]>(&t[0][0]));
    return;
  }
  alignas(16) uint32_t r[4][4][4];
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int n = chunks - k0 < kFlushSteps ? chunks - k0 : kFlushSteps;
    Period4(pa + 64L * k0, pf + 256L * k0, n, r);
    for (int i = 0; i < 4; ++i)
      for (int p = 0; p < 4; ++p)
        t[i][p] = k0 == 0 ? vld1q_u32(r[i][p]) : vaddq_u32(t[i][p], vld1q_u32(r[i][p]));
  }
}

// One pixel x 8 filters (vectors i, i + 1 at pf): t0 lane j = filter vector i
// register j, t1 the same for vector i + 1.
inline void Tile1(const uint8_t* pa, const uint8_t* pf, int chunks, uint32x4_t* t0,
                  uint32x4_t* t1) {
  alignas(16) uint32_t r[2][4];
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int n = chunks - k0 < kFlushSteps ? chunks - k0 : kFlushSteps;
    Period1(pa + 64L * k0, pf + 256L * k0, n, r);
    *t0 = k0 == 0 ? vld1q_u32(r[0]) : vaddq_u32(*t0, vld1q_u32(r[0]));
    *t1 = k0 == 0 ? vld1q_u32(r[1]) : vaddq_u32(*t1, vld1q_u32(r[1]));
  }
}

// The fused epilogue of one pixel and one full block: v.val[i] lane j holds
// filter 4j + i, so the block's per-filter constants load de-interleaved
// (LD4) into the same order and a float result stores back with ST4.
inline void StoreFused(const uint32x4x4_t& v, int o0, long pixel,
                       const BlockedEpilogue& e) {
  if (e.thresholds != nullptr) {
    const int32x4x4_t thr = vld4q_s32(e.thresholds + o0);
    uint32x4_t bits = vdupq_n_u32(0);
    for (int i = 0; i < 4; ++i) {
      const uint32_t w[4] = {1u << i, 1u << (4 + i), 1u << (8 + i), 1u << (12 + i)};
      const uint32x4_t gt = vcgtq_s32(vreinterpretq_s32_u32(v.val[i]), thr.val[i]);
      bits = vorrq_u32(bits, vandq_u32(gt, vld1q_u32(w)));
    }
    e.bits[pixel * e.bits_stride + o0 / 16] = static_cast<uint16_t>(vaddvq_u32(bits));
    return;
  }
  const float32x4x4_t mul = vld4q_f32(e.mul + o0);
  const float32x4x4_t bias = vld4q_f32(e.bias + o0);
  const int32x4_t lo = vdupq_n_s32(e.clamp_lo), hi = vdupq_n_s32(e.clamp_hi);
  float32x4x4_t y;
  for (int i = 0; i < 4; ++i) {
    const int32x4_t x =
        vmaxq_s32(vminq_s32(vshlq_n_s32(vreinterpretq_s32_u32(v.val[i]), 1), hi), lo);
    y.val[i] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(x), mul.val[i]), bias.val[i]);
  }
  vst4q_f32(e.out + pixel * e.out_stride + o0, y);
}

// The same for a partial block (filters o0 .. n_out - 1), lane by lane.
void StoreFusedPartial(const uint32_t all[16], int o0, int n_out, long pixel,
                       const BlockedEpilogue& e) {
  const int n = n_out - o0;
  if (e.thresholds != nullptr) {
    uint32_t bits = 0;
    for (int o = 0; o < n; ++o)
      bits |= static_cast<uint32_t>(static_cast<int32_t>(all[o]) > e.thresholds[o0 + o]) << o;
    e.bits[pixel * e.bits_stride + o0 / 16] = static_cast<uint16_t>(bits);
    return;
  }
  for (int o = 0; o < n; ++o) {
    int32_t x = static_cast<int32_t>(all[o]) * 2;
    x = x < e.clamp_hi ? x : e.clamp_hi;
    x = x > e.clamp_lo ? x : e.clamp_lo;
    e.out[pixel * e.out_stride + o0 + o] = static_cast<float>(x) * e.mul[o0 + o] + e.bias[o0 + o];
  }
}

// The 16 output bits of pixel p of a full block, one per lane group: lane j of
// r[i][p] (filter 4j + i) against its threshold, weighted by its bit.
inline uint32x4_t Bits(const uint32x4_t r[4][4], const int32x4x4_t& thr,
                       const uint32x4_t weight[4], int p) {
  uint32x4_t bits = vandq_u32(vcgtq_s32(vreinterpretq_s32_u32(r[0][p]), thr.val[0]), weight[0]);
  for (int i = 1; i < 4; ++i)
    bits = vorrq_u32(bits, vandq_u32(vcgtq_s32(vreinterpretq_s32_u32(r[i][p]), thr.val[i]),
                                     weight[i]));
  return bits;
}

// All 4 pixels of a tile at once, straight-line: pairwise adds (the bits are
// disjoint, so add is or) leave pixel p's word in lane p, one ADDP tree
// instead of 4 ADDVs, with the thresholds and weights loaded once (the per-
// pixel loop reloaded them for every pixel: ~30 instructions a pixel).
inline void StoreBits4(const uint32x4_t r[4][4], const int32x4x4_t& thr,
                       const uint32x4_t weight[4], uint16_t* dst, long stride) {
  const uint32x4_t b01 = vpaddq_u32(Bits(r, thr, weight, 0), Bits(r, thr, weight, 1));
  const uint32x4_t b23 = vpaddq_u32(Bits(r, thr, weight, 2), Bits(r, thr, weight, 3));
  const uint32x4_t word = vpaddq_u32(b01, b23);  // lane p: pixel p
  dst[0] = static_cast<uint16_t>(vgetq_lane_u32(word, 0));
  dst[stride] = static_cast<uint16_t>(vgetq_lane_u32(word, 1));
  dst[2 * stride] = static_cast<uint16_t>(vgetq_lane_u32(word, 2));
  dst[3 * stride] = static_cast<uint16_t>(vgetq_lane_u32(word, 3));
}

}  // namespace

void BgemmNeonBlocked(const uint32_t* patches, int n_pix, const uint32_t* filters, int n_out,
                      int kwords, int32_t* accum, int ldc, const BlockedEpilogue* fused) {
  const int chunks = kwords / kKWordAlign;
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  const int groups = (n_pix + 3) / 4;
  for (int b = 0; b < blocks; ++b) {
    const uint8_t* fb =
        reinterpret_cast<const uint8_t*>(filters + static_cast<long>(b) * kBlockFilters * kwords);
    const int o0 = b * kBlockFilters;
    const bool full = o0 + kBlockFilters <= n_out;
    const bool bits = full && fused != nullptr && fused->thresholds != nullptr;
    int32x4x4_t thr = {};
    if (bits) thr = vld4q_s32(fused->thresholds + o0);
    const bool bits16 = bits && kwords <= kNeonBitsMaxKWords;
    uint32x4_t weight[4];  // lane j of weight[i]: bit 4j + i of the block's 16
    for (int i = 0; i < 4; ++i) {
      const uint32_t w[4] = {1u << i, 1u << (4 + i), 1u << (8 + i), 1u << (12 + i)};
      weight[i] = vld1q_u32(w);
    }
    int q = 0;
    if (bits16 && n_pix >= 4) {  // every whole group in one call; a partial one below
      q = n_pix / 4;
      BgemmNeonBits4x8(patches, q, filters + static_cast<long>(b) * kBlockFilters * kwords,
                       kwords, fused->thresholds + o0, fused->bits + o0 / 16, fused->bits_stride);
    }
    for (; q < groups; ++q) {
      const uint8_t* pa =
          reinterpret_cast<const uint8_t*>(patches + static_cast<long>(q) * 4 * kwords);
      const int np = n_pix - 4 * q < 4 ? n_pix - 4 * q : 4;
      // r[i][p] lane j: pixel p, filter o0 + 4j + i.
      uint32x4_t r[4][4];
      if (np == 1) {
        Tile1(pa, fb, chunks, &r[0][0], &r[1][0]);
        Tile1(pa, fb + 128, chunks, &r[2][0], &r[3][0]);
      } else {
        Tile4(pa, fb, chunks, r);
      }
      if (bits) {
        // Bitpacked output of a full block: the thresholds (de-interleaved like
        // r[i][p]: lane j = filter 4j + i) and bit weights stay in registers.
        uint16_t* dst = fused->bits + 4L * q * fused->bits_stride + o0 / 16;
        if (np == 4) {
          StoreBits4(r, thr, weight, dst, fused->bits_stride);
          continue;
        }
        for (int p = 0; p < np; ++p)
          dst[p * fused->bits_stride] = static_cast<uint16_t>(vaddvq_u32(Bits(r, thr, weight, p)));
        continue;
      }
      for (int p = 0; p < np; ++p) {
        const long pixel = 4 * q + p;
        const uint32x4x4_t v = {{r[0][p], r[1][p], r[2][p], r[3][p]}};
        if (full && fused != nullptr) {
          StoreFused(v, o0, pixel, *fused);
          continue;
        }
        int32_t* out = accum + pixel * ldc + o0;
        if (full) {
          // ST4 interleaves lane j of the 4 vectors: filters 4j + 0..3, in order.
          vst4q_u32(reinterpret_cast<uint32_t*>(out), v);
          continue;
        }
        alignas(16) uint32_t all[16];
        vst4q_u32(all, v);
        if (fused != nullptr)
          StoreFusedPartial(all, o0, n_out, pixel, *fused);
        else
          for (int o = 0; o < n_out - o0; ++o) out[o] = static_cast<int32_t>(all[o]);
      }
    }
  }
}

}  // namespace bitlite

#endif  // __aarch64__

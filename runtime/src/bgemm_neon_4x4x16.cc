// AArch64 NEON binary GEMM over the blocked 16x4 filter layout and 4-pixel
// interleaved patches: 4 pixels x 4 filters per tile, one block of 16 filters
// as 4 such tiles (vector i of the block holds filters i, 4+i, 8+i, 12+i).
//
// Per 128-bit K step: one LD1 {4 regs} of patches, one of filters, then 16 x
// (EOR, CNT, ADD.16B) into 8-bit accumulators: 3 instructions per 128 binary
// MACs plus 2 loads per 2048 MACs; the loop (inline assembly) is unrolled
// twice so its branch and counter are shared by 4096 MACs. A byte gains at most 8 per step, so the
// accumulators are widened (UADDLP + ADDP into uint32 totals) every 30 steps.
#if defined(__aarch64__)

#include <arm_neon.h>

#include "bgemm.h"

namespace bitlite {
namespace {

constexpr int kFlushSteps = 30;  // 30 * 8 = 240 <= 255 (even: whole unrolled pairs)

// acc[j] lanes: byte counts of filter j -> uint32 lane j = its total.
inline uint32x4_t Reduce4(uint8x16_t a0, uint8x16_t a1, uint8x16_t a2, uint8x16_t a3) {
  const uint16x8_t ab = vpaddq_u16(vpaddlq_u8(a0), vpaddlq_u8(a1));
  const uint16x8_t cd = vpaddq_u16(vpaddlq_u8(a2), vpaddlq_u8(a3));
  return vpaddlq_u16(vpaddq_u16(ab, cd));
}

// One K step: accumulator v(16 + 4p + j) += popcount(pixel p XOR filter j).
#define BITLITE_NEON_STEP_ASM \
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
  "eor v12.16b, v1.16b, v4.16b\n" \
  "cnt v12.16b, v12.16b\n" \
  "add v20.16b, v20.16b, v12.16b\n" \
  "eor v13.16b, v1.16b, v5.16b\n" \
  "cnt v13.16b, v13.16b\n" \
  "add v21.16b, v21.16b, v13.16b\n" \
  "eor v14.16b, v1.16b, v6.16b\n" \
  "cnt v14.16b, v14.16b\n" \
  "add v22.16b, v22.16b, v14.16b\n" \
  "eor v15.16b, v1.16b, v7.16b\n" \
  "cnt v15.16b, v15.16b\n" \
  "add v23.16b, v23.16b, v15.16b\n" \
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
  "eor v12.16b, v3.16b, v4.16b\n" \
  "cnt v12.16b, v12.16b\n" \
  "add v28.16b, v28.16b, v12.16b\n" \
  "eor v13.16b, v3.16b, v5.16b\n" \
  "cnt v13.16b, v13.16b\n" \
  "add v29.16b, v29.16b, v13.16b\n" \
  "eor v14.16b, v3.16b, v6.16b\n" \
  "cnt v14.16b, v14.16b\n" \
  "add v30.16b, v30.16b, v14.16b\n" \
  "eor v15.16b, v3.16b, v7.16b\n" \
  "cnt v15.16b, v15.16b\n" \
  "add v31.16b, v31.16b, v15.16b\n"

// `steps` K steps of the 4 x 4 tile into 8-bit accumulators (steps <= 31),
// written to acc[4p + j] as 16 byte counts each. The whole period is one asm
// block: GCC 12's schedule of the same intrinsics loads both unrolled steps at
// once and spills half of the 16 accumulators inside the loop.
inline void Period(const uint8_t* pa, const uint8_t* pf, int steps, uint8_t acc[16][16]) {
  long pairs = steps / 2;
  const long odd = steps % 2;
  const long fstride = 256;  // bytes from one K chunk of a filter vector to the next
  uint8_t* out = &acc[0][0];
  __asm__ volatile(
      "movi v16.16b, #0\n" "movi v17.16b, #0\n" "movi v18.16b, #0\n" "movi v19.16b, #0\n" "movi v20.16b, #0\n" "movi v21.16b, #0\n" "movi v22.16b, #0\n" "movi v23.16b, #0\n" "movi v24.16b, #0\n" "movi v25.16b, #0\n" "movi v26.16b, #0\n" "movi v27.16b, #0\n" "movi v28.16b, #0\n" "movi v29.16b, #0\n" "movi v30.16b, #0\n" "movi v31.16b, #0\n"
      "cbz %[pairs], 2f\n"
      "1:\n"
      BITLITE_NEON_STEP_ASM
      BITLITE_NEON_STEP_ASM
      "subs %[pairs], %[pairs], #1\n"
      "b.ne 1b\n"
      "2:\n"
      "cbz %[odd], 3f\n"
      BITLITE_NEON_STEP_ASM
      "3:\n"
      "st1 {v16.16b-v19.16b}, [%[out]], #64\n"
      "st1 {v20.16b-v23.16b}, [%[out]], #64\n"
      "st1 {v24.16b-v27.16b}, [%[out]], #64\n"
      "st1 {v28.16b-v31.16b}, [%[out]], #64\n"
      : [pa] "+r"(pa), [pf] "+r"(pf), [pairs] "+r"(pairs), [out] "+r"(out)
      : [odd] "r"(odd), [fstride] "r"(fstride)
      : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12",
        "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24",
        "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc");
}

// One K step of a single pixel against 8 filters (vectors i and i + 1 of the
// block): accumulator v(16 + j) += popcount(pixel XOR filter register j).
#define BITLITE_NEON_STEP1_ASM \
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
// one pixel: a 4 x 4 tile would count 3 padding rows). acc[j] as in Period.
inline void Period1(const uint8_t* pa, const uint8_t* pf, int steps, uint8_t acc[8][16]) {
  long n = steps;
  const long fstride = 256 - 64;  // the second LD1 x4 already advanced 64 bytes
  const long pstride = 64;        // the pixel's next chunk (4-pixel interleaved rows)
  uint8_t* out = &acc[0][0];
  __asm__ volatile(
      "movi v16.16b, #0\n" "movi v17.16b, #0\n" "movi v18.16b, #0\n" "movi v19.16b, #0\n" "movi v20.16b, #0\n" "movi v21.16b, #0\n" "movi v22.16b, #0\n" "movi v23.16b, #0\n"
      "1:\n"
      BITLITE_NEON_STEP1_ASM
      "subs %[n], %[n], #1\n"
      "b.ne 1b\n"
      "st1 {v16.16b-v19.16b}, [%[out]], #64\n"
      "st1 {v20.16b-v23.16b}, [%[out]], #64\n"
      : [pa] "+r"(pa), [pf] "+r"(pf), [n] "+r"(n), [out] "+r"(out)
      : [fstride] "r"(fstride), [pstride] "r"(pstride)
      : "v0", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v16", "v17", "v18", "v19",
        "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31",
        "memory", "cc");
}

// 4 pixels (interleaved chunks at pa) x 4 filters (chunks at pf, 256 bytes
// apart): t[p][j] = disagreements of pixel p with filter j.
inline void Tile(const uint8_t* pa, const uint8_t* pf, int chunks, uint32x4_t t[4]) {
  uint32x4_t tot[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
  alignas(16) uint8_t acc[16][16];
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int n = chunks - k0 < kFlushSteps ? chunks - k0 : kFlushSteps;
    Period(pa + 64L * k0, pf + 256L * k0, n, acc);
    for (int p = 0; p < 4; ++p)
      tot[p] = vaddq_u32(tot[p], Reduce4(vld1q_u8(acc[4 * p]), vld1q_u8(acc[4 * p + 1]),
                                         vld1q_u8(acc[4 * p + 2]), vld1q_u8(acc[4 * p + 3])));
  }
  for (int p = 0; p < 4; ++p) t[p] = tot[p];
}

// One pixel x 8 filters (vectors i, i + 1 at pf): t0 lane j = filter vector i
// register j, t1 the same for vector i + 1.
inline void Tile1(const uint8_t* pa, const uint8_t* pf, int chunks, uint32x4_t* t0,
                  uint32x4_t* t1) {
  uint32x4_t a = vdupq_n_u32(0), b = a;
  alignas(16) uint8_t acc[8][16];
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int n = chunks - k0 < kFlushSteps ? chunks - k0 : kFlushSteps;
    Period1(pa + 64L * k0, pf + 256L * k0, n, acc);
    a = vaddq_u32(a, Reduce4(vld1q_u8(acc[0]), vld1q_u8(acc[1]), vld1q_u8(acc[2]),
                             vld1q_u8(acc[3])));
    b = vaddq_u32(b, Reduce4(vld1q_u8(acc[4]), vld1q_u8(acc[5]), vld1q_u8(acc[6]),
                             vld1q_u8(acc[7])));
  }
  *t0 = a;
  *t1 = b;
}

}  // namespace

void BgemmNeonBlocked(const uint32_t* patches, int n_pix, const uint32_t* filters, int n_out,
                      int kwords, int32_t* accum, int ldc, const BlockedEpilogue*) {
  const int chunks = kwords / kKWordAlign;
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  const int groups = (n_pix + 3) / 4;
  for (int b = 0; b < blocks; ++b) {
    const uint8_t* fb =
        reinterpret_cast<const uint8_t*>(filters + static_cast<long>(b) * kBlockFilters * kwords);
    const int o0 = b * kBlockFilters;
    for (int q = 0; q < groups; ++q) {
      const uint8_t* pa =
          reinterpret_cast<const uint8_t*>(patches + static_cast<long>(q) * 4 * kwords);
      const int np = n_pix - 4 * q < 4 ? n_pix - 4 * q : 4;
      // r[i][p] lane j: pixel p, filter o0 + 4j + i.
      uint32x4_t r[4][4];
      if (np == 1) {
        Tile1(pa, fb, chunks, &r[0][0], &r[1][0]);
        Tile1(pa, fb + 128, chunks, &r[2][0], &r[3][0]);
      } else {
        for (int i = 0; i < 4; ++i) Tile(pa, fb + 64 * i, chunks, r[i]);
      }
      for (int p = 0; p < np; ++p) {
        int32_t* out = accum + static_cast<long>(4 * q + p) * ldc + o0;
        const uint32x4x4_t v = {{r[0][p], r[1][p], r[2][p], r[3][p]}};
        if (o0 + kBlockFilters <= n_out) {
          // ST4 interleaves lane j of the 4 vectors: filters 4j + 0..3, in order.
          vst4q_u32(reinterpret_cast<uint32_t*>(out), v);
          continue;
        }
        alignas(16) uint32_t all[16];
        vst4q_u32(all, v);
        for (int o = 0; o < n_out - o0; ++o) out[o] = static_cast<int32_t>(all[o]);
      }
    }
  }
}

}  // namespace bitlite

#endif  // __aarch64__

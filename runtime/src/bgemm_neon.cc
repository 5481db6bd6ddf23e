// Arm NEON kernel: VEOR + VCNT (bits per byte) + VPADAL (pairwise widen and
// accumulate into uint16 lanes). Tile: 4 pixels x 4 filters on AArch64 (32
// vector registers), 2 x 2 on 32-bit Arm (16 quad registers). A uint16 lane
// gains at most 16 per 128-bit step, so lanes are widened every 2048 steps.
#if defined(__ARM_NEON) || defined(__aarch64__)

#include <arm_neon.h>

#include "bgemm.h"

namespace bitlite {
namespace {

#if defined(__aarch64__)
constexpr int kP = 4, kO = 4;
inline uint32_t SumLanes(uint32x4_t v) { return vaddvq_u32(v); }
#else
constexpr int kP = 2, kO = 2;
inline uint32_t SumLanes(uint32x4_t v) {
  const uint32x2_t s = vadd_u32(vget_low_u32(v), vget_high_u32(v));
  return vget_lane_u32(vpadd_u32(s, s), 0);
}
#endif
constexpr int kFlushSteps = 2048;

}  // namespace

void BgemmNeon(const uint32_t* patches, int n_pix, const uint32_t* filters, int n_out,
               int kwords, int32_t* accum, int ldc) {
  const int steps = kwords / 4;
  for (int p0 = 0; p0 < n_pix; p0 += kP) {
    const uint8_t* a[kP];
    for (int i = 0; i < kP; ++i)  // a partial tile repeats its last row
      a[i] = reinterpret_cast<const uint8_t*>(
          patches + static_cast<long>(p0 + i < n_pix ? p0 + i : n_pix - 1) * kwords);
    for (int o0 = 0; o0 < n_out; o0 += kO) {
      const uint8_t* b[kO];
      for (int j = 0; j < kO; ++j)
        b[j] = reinterpret_cast<const uint8_t*>(
            filters + static_cast<long>(o0 + j < n_out ? o0 + j : n_out - 1) * kwords);
      uint32_t total[kP][kO] = {};
      for (int s0 = 0; s0 < steps; s0 += kFlushSteps) {
        const int s1 = s0 + kFlushSteps < steps ? s0 + kFlushSteps : steps;
        uint16x8_t acc[kP][kO];
#pragma GCC unroll 4
        for (int i = 0; i < kP; ++i)
#pragma GCC unroll 4
          for (int j = 0; j < kO; ++j) acc[i][j] = vdupq_n_u16(0);
        for (int s = s0; s < s1; ++s) {
          uint8x16_t va[kP], vb[kO];
#pragma GCC unroll 4
          for (int i = 0; i < kP; ++i) va[i] = vld1q_u8(a[i] + 16 * s);
#pragma GCC unroll 4
          for (int j = 0; j < kO; ++j) vb[j] = vld1q_u8(b[j] + 16 * s);
#pragma GCC unroll 4
          for (int i = 0; i < kP; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < kO; ++j)
              acc[i][j] = vpadalq_u8(acc[i][j], vcntq_u8(veorq_u8(va[i], vb[j])));
        }
        for (int i = 0; i < kP; ++i)
          for (int j = 0; j < kO; ++j) total[i][j] += SumLanes(vpaddlq_u16(acc[i][j]));
      }
      for (int i = 0; i < kP && p0 + i < n_pix; ++i)
        for (int j = 0; j < kO && o0 + j < n_out; ++j)
          accum[static_cast<long>(p0 + i) * ldc + o0 + j] = static_cast<int32_t>(total[i][j]);
    }
  }
}

}  // namespace bitlite

#endif  // NEON

// LceQuantize's float bitpacking (bit = x < 0) on AArch64 NEON: FCMLT #0 per
// 4 floats (false for NaN and -0.0, exactly like `x < 0.0f`), each lane ANDed
// with its bit's weight, ORed together and summed across lanes (the bits are
// disjoint, so the sum is the word): about 27 instructions per 32 floats.
// Rows of a multiple of 32 channels only (every word full); others stay scalar.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

#include "simple_ops.h"

namespace bitlite {

bool BitpackFloatNeon(const float* in, long rows, int channels, int32_t* out) {
  if (channels % 32 != 0) return false;
  const long words = rows * (channels / 32);  // whole words: one long row
  uint32x4_t weight[8];
  for (int q = 0; q < 8; ++q) {
    const uint32_t w[4] = {1u << (4 * q), 1u << (4 * q + 1), 1u << (4 * q + 2),
                           1u << (4 * q + 3)};
    weight[q] = vld1q_u32(w);
  }
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
  for (long w = 0; w < words; ++w, in += 32) {
    const float32x4x4_t a = vld1q_f32_x4(in);
    const float32x4x4_t b = vld1q_f32_x4(in + 16);
    uint32x4_t t = vandq_u32(vcltzq_f32(a.val[0]), weight[0]);
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(a.val[1]), weight[1]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(a.val[2]), weight[2]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(a.val[3]), weight[3]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(b.val[0]), weight[4]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(b.val[1]), weight[5]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(b.val[2]), weight[6]));
    t = vorrq_u32(t, vandq_u32(vcltzq_f32(b.val[3]), weight[7]));
    o[w] = vaddvq_u32(t);
  }
  return true;
}

}  // namespace bitlite

#endif  // __aarch64__

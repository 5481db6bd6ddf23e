// LceQuantize's float bitpacking (bit = x < 0) vectorized for x86: one ordered
// less-than compare per 16 (AVX-512) or 8 (AVX2) floats gives the bits
// directly; _CMP_LT_OQ is false for NaN and -0.0, exactly like `x < 0.0f`.
// Rows of a multiple of 32 channels only (every word full); others stay scalar.
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstdint>

#include "simple_ops.h"

namespace bitlite {
namespace {

__attribute__((target("avx512f"))) void PackAvx512(const float* in, long words,
                                                   uint32_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  for (long w = 0; w < words; ++w, in += 32) {
    const uint32_t lo = _mm512_cmp_ps_mask(_mm512_loadu_ps(in), zero, _CMP_LT_OQ);
    const uint32_t hi = _mm512_cmp_ps_mask(_mm512_loadu_ps(in + 16), zero, _CMP_LT_OQ);
    out[w] = lo | (hi << 16);
  }
}

__attribute__((target("avx2"))) void PackAvx2(const float* in, long words, uint32_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  for (long w = 0; w < words; ++w, in += 32) {
    uint32_t bits = 0;
    for (int q = 0; q < 4; ++q) {
      const __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(in + 8 * q), zero, _CMP_LT_OQ);
      bits |= static_cast<uint32_t>(_mm256_movemask_ps(lt)) << (8 * q);
    }
    out[w] = bits;
  }
}

int Level() {  // 2: AVX-512F, 1: AVX2, 0: neither
  static const int level = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
  }();
  return level;
}

}  // namespace

bool BitpackFloatX86(const float* in, long rows, int channels, int32_t* out) {
  if (channels % 32 != 0 || Level() == 0) return false;
  // Rows of whole words are contiguous: pack the tensor as one long row.
  const long words = rows * (channels / 32);
  if (Level() == 2)
    PackAvx512(in, words, reinterpret_cast<uint32_t*>(out));
  else
    PackAvx2(in, words, reinterpret_cast<uint32_t*>(out));
  return true;
}

}  // namespace bitlite

#endif  // x86

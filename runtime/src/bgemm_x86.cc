// x86-64 kernels, compiled with per-function target attributes so that one
// library runs on every x86-64 CPU; dispatch.cc calls them only when the CPU
// reports the instructions.
//
// AVX2 has no vector popcount: count bits per nibble with a 16-entry VPSHUFB
// table (Mula's method), add the byte counts (at most 8 per byte per step, so
// 31 steps fit in a byte), and widen with VPSADBW. Tile: 2 pixels x 4 filters.
// AVX-512 VPOPCNTDQ counts 64-bit lanes directly. Tile: 4 pixels x 4 filters.
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "bgemm.h"

namespace bitlite {
namespace {

#define BITLITE_AVX2 __attribute__((target("avx2,popcnt")))
#define BITLITE_AVX512 __attribute__((target("avx512f,avx512vpopcntdq")))

BITLITE_AVX2 inline __m256i LoadAvx2(const uint32_t* p, bool half) {
  if (!half) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // The row ends with a 128-bit remainder: load it, zero the upper lane.
  return _mm256_inserti128_si256(_mm256_setzero_si256(),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), 0);
}

BITLITE_AVX2 inline __m256i PopcountBytes(__m256i v, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

BITLITE_AVX2 inline int64_t SumBytes(__m256i v) {
  const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
  const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}

BITLITE_AVX512 inline int32_t SumLanes512(__m512i v) {
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(reinterpret_cast<__m512i*>(lanes), v);
  int64_t s = 0;
  for (int64_t x : lanes) s += x;
  return static_cast<int32_t>(s);
}

}  // namespace

BITLITE_AVX2 void BgemmAvx2(const uint32_t* patches, int n_pix, const uint32_t* filters,
                            int n_out, int kwords, int32_t* accum, int ldc) {
  constexpr int P = 2, O = 4;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const int steps = (kwords + 7) / 8;
  const bool last_half = (kwords % 8) != 0;
  for (int p0 = 0; p0 < n_pix; p0 += P) {
    const uint32_t* a[P];
    for (int i = 0; i < P; ++i)  // a partial tile repeats its last row
      a[i] = patches + static_cast<long>(p0 + i < n_pix ? p0 + i : n_pix - 1) * kwords;
    for (int o0 = 0; o0 < n_out; o0 += O) {
      const uint32_t* b[O];
      for (int j = 0; j < O; ++j)
        b[j] = filters + static_cast<long>(o0 + j < n_out ? o0 + j : n_out - 1) * kwords;
      int64_t total[P][O] = {};
      __m256i acc[P][O];
      for (int i = 0; i < P; ++i)
        for (int j = 0; j < O; ++j) acc[i][j] = _mm256_setzero_si256();
      int pending = 0;
      for (int s = 0; s < steps; ++s) {
        const bool half = last_half && s == steps - 1;
        const int k = s * 8;
        __m256i va[P], vb[O];
        for (int i = 0; i < P; ++i) va[i] = LoadAvx2(a[i] + k, half);
        for (int j = 0; j < O; ++j) vb[j] = LoadAvx2(b[j] + k, half);
        for (int i = 0; i < P; ++i)
          for (int j = 0; j < O; ++j)
            acc[i][j] = _mm256_add_epi8(
                acc[i][j], PopcountBytes(_mm256_xor_si256(va[i], vb[j]), lut, low));
        if (++pending == 31 || s == steps - 1) {  // byte counters would overflow at 32
          for (int i = 0; i < P; ++i)
            for (int j = 0; j < O; ++j) {
              total[i][j] += SumBytes(acc[i][j]);
              acc[i][j] = _mm256_setzero_si256();
            }
          pending = 0;
        }
      }
      for (int i = 0; i < P && p0 + i < n_pix; ++i)
        for (int j = 0; j < O && o0 + j < n_out; ++j)
          accum[static_cast<long>(p0 + i) * ldc + o0 + j] = static_cast<int32_t>(total[i][j]);
    }
  }
}

BITLITE_AVX512 void BgemmAvx512(const uint32_t* patches, int n_pix, const uint32_t* filters,
                                int n_out, int kwords, int32_t* accum, int ldc) {
  constexpr int P = 4, O = 4;
  const int steps = (kwords + 15) / 16;
  const int rem = kwords % 16;  // 0, 4, 8 or 12 words in the last step
  const __mmask16 tail = rem ? static_cast<__mmask16>((1u << rem) - 1) : 0xFFFF;
  for (int p0 = 0; p0 < n_pix; p0 += P) {
    const uint32_t* a[P];
    for (int i = 0; i < P; ++i)
      a[i] = patches + static_cast<long>(p0 + i < n_pix ? p0 + i : n_pix - 1) * kwords;
    for (int o0 = 0; o0 < n_out; o0 += O) {
      const uint32_t* b[O];
      for (int j = 0; j < O; ++j)
        b[j] = filters + static_cast<long>(o0 + j < n_out ? o0 + j : n_out - 1) * kwords;
      __m512i acc[P][O];
      for (int i = 0; i < P; ++i)
        for (int j = 0; j < O; ++j) acc[i][j] = _mm512_setzero_si512();
      for (int s = 0; s < steps; ++s) {
        const __mmask16 m = s == steps - 1 ? tail : 0xFFFF;
        const int k = s * 16;
        __m512i va[P], vb[O];
        for (int i = 0; i < P; ++i) va[i] = _mm512_maskz_loadu_epi32(m, a[i] + k);
        for (int j = 0; j < O; ++j) vb[j] = _mm512_maskz_loadu_epi32(m, b[j] + k);
        for (int i = 0; i < P; ++i)
          for (int j = 0; j < O; ++j)
            acc[i][j] = _mm512_add_epi64(
                acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va[i], vb[j])));
      }
      for (int i = 0; i < P && p0 + i < n_pix; ++i)
        for (int j = 0; j < O && o0 + j < n_out; ++j)
          accum[static_cast<long>(p0 + i) * ldc + o0 + j] = SumLanes512(acc[i][j]);
    }
  }
}

}  // namespace bitlite

#endif  // x86

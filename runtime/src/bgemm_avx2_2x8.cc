// AVX2 binary GEMM: 2 pixels x 8 filters register tile over the blocked 16x4
// filter layout (bgemm.h); a 16-filter block is two such half-block tiles.
//
// AVX2 has no vector popcount: after the XOR, each nibble's bit count comes
// from a 16-entry VPSHUFB table (Mula's method). One 256-bit register holds
// the same 128-bit K chunk of two filters, so a broadcast patch chunk meets 8
// filters in 4 XORs. Per 256 binary MACs: XOR, 2 AND, shift, 2 VPSHUFB, 2 ADD
// into byte counters (8 accumulators, 15 of the 16 ymm registers in use).
// A byte gains at most 8 per step: the counters are widened with VPSADBW
// every 31 steps into 64-bit totals kept in memory (rare: K <= 31 chunks in
// most layers).
#if defined(__x86_64__) || defined(__i386__)

// GCC 12 flags the deliberately undefined source operand inside its own
// intrinsics headers when inlined into target functions (not this code).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "bgemm.h"

namespace bitlite {
namespace {

#define BITLITE_AVX2 __attribute__((target("avx2")))

constexpr int kFlushSteps = 31;  // 31 * 8 = 248 <= 255

BITLITE_AVX2 inline __m256i CountBytes(__m256i d, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(d, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(d, 4), low));
  return _mm256_add_epi8(lo, hi);
}

// Adds the byte counters of `acc` into t[0] (low lane's filter) and t[1].
BITLITE_AVX2 inline void Widen(__m256i acc, uint64_t* t) {
  alignas(32) uint64_t q[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_sad_epu8(acc, _mm256_setzero_si256()));
  t[0] += q[0] + q[1];
  t[1] += q[2] + q[3];
}

// Pixels a0, a1 against the half block at f (4 registers of 2 filters per K
// chunk, chunks 64 words apart): t[p][2j + h] = count of register j, lane h.
BITLITE_AVX2 void Tile(const uint32_t* a0, const uint32_t* a1, const uint32_t* f, int chunks,
                       uint64_t t[2][8]) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int p = 0; p < 2; ++p)
    for (int j = 0; j < 8; ++j) t[p][j] = 0;
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int k1 = chunks - k0 < kFlushSteps ? chunks : k0 + kFlushSteps;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
    __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (int k = k0; k < k1; ++k) {
      const uint32_t* fk = f + kBlockChunkWords * k;
      const __m256i x0 = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a0 + 4 * k)));
      const __m256i x1 = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a1 + 4 * k)));
      __m256i fj = _mm256_load_si256(reinterpret_cast<const __m256i*>(fk));
      c00 = _mm256_add_epi8(c00, CountBytes(_mm256_xor_si256(x0, fj), lut, low));
      c10 = _mm256_add_epi8(c10, CountBytes(_mm256_xor_si256(x1, fj), lut, low));
      fj = _mm256_load_si256(reinterpret_cast<const __m256i*>(fk + 8));
      c01 = _mm256_add_epi8(c01, CountBytes(_mm256_xor_si256(x0, fj), lut, low));
      c11 = _mm256_add_epi8(c11, CountBytes(_mm256_xor_si256(x1, fj), lut, low));
      fj = _mm256_load_si256(reinterpret_cast<const __m256i*>(fk + 16));
      c02 = _mm256_add_epi8(c02, CountBytes(_mm256_xor_si256(x0, fj), lut, low));
      c12 = _mm256_add_epi8(c12, CountBytes(_mm256_xor_si256(x1, fj), lut, low));
      fj = _mm256_load_si256(reinterpret_cast<const __m256i*>(fk + 24));
      c03 = _mm256_add_epi8(c03, CountBytes(_mm256_xor_si256(x0, fj), lut, low));
      c13 = _mm256_add_epi8(c13, CountBytes(_mm256_xor_si256(x1, fj), lut, low));
    }
    Widen(c00, t[0] + 0), Widen(c01, t[0] + 2), Widen(c02, t[0] + 4), Widen(c03, t[0] + 6);
    Widen(c10, t[1] + 0), Widen(c11, t[1] + 2), Widen(c12, t[1] + 4), Widen(c13, t[1] + 6);
  }
}

}  // namespace

BITLITE_AVX2 void BgemmAvx2Blocked(const uint32_t* patches, int n_pix, const uint32_t* filters,
                                   int n_out, int kwords, int32_t* accum, int ldc,
                                   const BlockedEpilogue*) {
  const int chunks = kwords / kKWordAlign;
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  for (int b = 0; b < blocks; ++b)
    for (int half = 0; half < 2; ++half) {
      const uint32_t* f = filters + static_cast<long>(b) * kBlockFilters * kwords + 32 * half;
      for (int p0 = 0; p0 < n_pix; p0 += 2) {
        const int np = n_pix - p0 < 2 ? 1 : 2;
        const uint32_t* a0 = patches + static_cast<long>(p0) * kwords;
        const uint32_t* a1 = a0 + (np == 2 ? kwords : 0);  // an odd last pixel runs twice
        uint64_t t[2][8];
        Tile(a0, a1, f, chunks, t);
        for (int p = 0; p < np; ++p)
          for (int j = 0; j < 4; ++j)
            for (int h = 0; h < 2; ++h) {
              // Register j of the half block is vector i = 2 half + j / 2 of the
              // block, lane L = 2 (j % 2) + h: filter 4 L + i.
              const int o = b * kBlockFilters + 4 * (2 * (j % 2) + h) + 2 * half + j / 2;
              if (o < n_out)
                accum[static_cast<long>(p0 + p) * ldc + o] = static_cast<int32_t>(t[p][2 * j + h]);
            }
      }
    }
}

}  // namespace bitlite

#endif  // x86

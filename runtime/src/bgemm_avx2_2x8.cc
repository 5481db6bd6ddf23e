// AVX2 binary GEMM: 2 pixels x 8 filters register tile over the blocked 16x4
// filter layout (bgemm.h); a 16-filter block is two such half-block tiles.
//
// AVX2 has no vector popcount: after the XOR, each nibble's bit count comes
// from a 16-entry VPSHUFB table (Mula's method). One 256-bit register holds
// the same 128-bit K chunk of two filters, so a broadcast patch chunk meets 8
// filters in 4 XORs. Per 256 binary MACs: XOR, 2 AND, shift, 2 VPSHUFB, 2 ADD
// into byte counters (8 accumulators, 15 of the 16 ymm registers in use).
// A byte gains at most 8 per step: the counters are widened with VPSADBW
// every 31 steps into dword totals in registers (rare: K <= 31 chunks in most
// layers). The block's 16 sums are put in filter order in registers and either
// stored or run through the fused epilogue (thresholds -> 16 output bits, or
// the float transform).
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

// Byte counters of one pixel's 4 registers (register j: filters A_j, B_j in its
// two 128-bit lanes) -> 8 dword totals [A0 A1 A2 A3 | B0 B1 B2 B3]. VPSADBW sums
// each lane's bytes 0-7 and 8-15 into two qwords (< 2^32), which pair up as dwords.
BITLITE_AVX2 inline __m256i Totals(__m256i c0, __m256i c1, __m256i c2, __m256i c3) {
  const __m256i z = _mm256_setzero_si256();
  const __m256i x01 = _mm256_or_si256(_mm256_sad_epu8(c0, z),
                                      _mm256_slli_epi64(_mm256_sad_epu8(c1, z), 32));
  const __m256i x23 = _mm256_or_si256(_mm256_sad_epu8(c2, z),
                                      _mm256_slli_epi64(_mm256_sad_epu8(c3, z), 32));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(x01, x23), _mm256_unpackhi_epi64(x01, x23));
}

// Pixels a0, a1 against the half block at f (4 registers of 2 filters per K
// chunk, chunks 64 words apart): t[p] = Totals of pixel p.
BITLITE_AVX2 void Tile(const uint32_t* a0, const uint32_t* a1, const uint32_t* f, int chunks,
                       __m256i t[2]) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  t[0] = t[1] = _mm256_setzero_si256();
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
    t[0] = _mm256_add_epi32(t[0], Totals(c00, c01, c02, c03));
    t[1] = _mm256_add_epi32(t[1], Totals(c10, c11, c12, c13));
  }
}

// One pixel's 16 sums of a block, from the Totals of its two half blocks. Register
// j of half h is vector i = 2h + j/2 of the block, lane L = 2 (j % 2) + (A: 0, B: 1),
// filter 4L + i: half 0 holds filters [0 8 1 9 | 4 12 5 13], half 1 the same + 2.
// Returns filters 0-7 in lo, 8-15 in hi.
BITLITE_AVX2 inline void FilterOrder(__m256i h0, __m256i h1, __m256i* lo, __m256i* hi) {
  const __m256i idx = _mm256_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7);
  h0 = _mm256_permutevar8x32_epi32(h0, idx);  // [0 1 8 9 | 4 5 12 13]
  h1 = _mm256_permutevar8x32_epi32(h1, idx);  // [2 3 10 11 | 6 7 14 15]
  *lo = _mm256_unpacklo_epi64(h0, h1);
  *hi = _mm256_unpackhi_epi64(h0, h1);
}

// Writes one pixel's n (1..16) sums of the block at filter o0: accumulators,
// or the fused epilogue (bits: 16 per block, lanes past n zero; float: clamp,
// multiply, then add, as the scalar transform rounds).
BITLITE_AVX2 void Store(__m256i lo, __m256i hi, int o0, int n, long pixel, int32_t* accum,
                        int ldc, const BlockedEpilogue* e) {
  alignas(32) int32_t sums[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(sums), lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), hi);
  if (e == nullptr) {
    int32_t* out = accum + pixel * ldc + o0;
    if (n == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), hi);
    } else {
      for (int o = 0; o < n; ++o) out[o] = sums[o];
    }
    return;
  }
  if (e->thresholds != nullptr) {
    uint32_t bits;
    if (n == 16) {
      const __m256i t0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e->thresholds + o0));
      const __m256i t1 =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e->thresholds + o0 + 8));
      bits = static_cast<uint32_t>(
                 _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(lo, t0)))) |
             static_cast<uint32_t>(
                 _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(hi, t1))))
                 << 8;
    } else {
      bits = 0;
      for (int o = 0; o < n; ++o)
        bits |= static_cast<uint32_t>(sums[o] > e->thresholds[o0 + o]) << o;
    }
    e->bits[pixel * e->bits_stride + o0 / 16] = static_cast<uint16_t>(bits);
    return;
  }
  float* y = e->out + pixel * e->out_stride + o0;
  if (n == 16) {
    const __m256i vlo = _mm256_set1_epi32(e->clamp_lo), vhi = _mm256_set1_epi32(e->clamp_hi);
    const __m256i x[2] = {lo, hi};
    for (int h = 0; h < 2; ++h) {
      const __m256i c = _mm256_max_epi32(_mm256_min_epi32(_mm256_slli_epi32(x[h], 1), vhi), vlo);
      const __m256 m = _mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_loadu_ps(e->mul + o0 + 8 * h));
      _mm256_storeu_ps(y + 8 * h, _mm256_add_ps(m, _mm256_loadu_ps(e->bias + o0 + 8 * h)));
    }
    return;
  }
  for (int o = 0; o < n; ++o) {
    int32_t x = sums[o] * 2;
    x = x < e->clamp_hi ? x : e->clamp_hi;
    x = x > e->clamp_lo ? x : e->clamp_lo;
    y[o] = static_cast<float>(x) * e->mul[o0 + o] + e->bias[o0 + o];
  }
}

}  // namespace

BITLITE_AVX2 void BgemmAvx2Blocked(const uint32_t* patches, int n_pix, const uint32_t* filters,
                                   int n_out, int kwords, int32_t* accum, int ldc,
                                   const BlockedEpilogue* fused) {
  const int chunks = kwords / kKWordAlign;
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  for (int b = 0; b < blocks; ++b) {
    const uint32_t* f = filters + static_cast<long>(b) * kBlockFilters * kwords;
    const int o0 = b * kBlockFilters;
    const int n = n_out - o0 < kBlockFilters ? n_out - o0 : kBlockFilters;
    for (int p0 = 0; p0 < n_pix; p0 += 2) {
      const int np = n_pix - p0 < 2 ? 1 : 2;
      const uint32_t* a0 = patches + static_cast<long>(p0) * kwords;
      const uint32_t* a1 = a0 + (np == 2 ? kwords : 0);  // an odd last pixel runs twice
      __m256i t0[2], t1[2];
      Tile(a0, a1, f, chunks, t0);       // half block 0: vectors 0, 1
      Tile(a0, a1, f + 32, chunks, t1);  // half block 1: vectors 2, 3
      for (int p = 0; p < np; ++p) {
        __m256i lo, hi;
        FilterOrder(t0[p], t1[p], &lo, &hi);
        Store(lo, hi, o0, n, p0 + p, accum, ldc, fused);
      }
    }
  }
}

}  // namespace bitlite

#endif  // x86

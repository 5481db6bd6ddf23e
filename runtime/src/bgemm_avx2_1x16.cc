// AVX2 binary GEMM: 1 pixel x 16 filters register tile over the "blocked 16x4
// nibbles" filter layout (bgemm.h).
//
// AVX2 has no vector popcount: each nibble's bit count comes from a 16-entry
// VPSHUFB table (Mula's method). One 256-bit register holds the same 128-bit K
// chunk of two filters, so a broadcast patch chunk meets 16 filters in 8
// registers. The filters' nibble planes are split at prepare and the patch
// chunk's once per chunk (AND, shift, AND, shared by the 8 registers), so per
// 256 binary MACs: 2 XOR (low and high planes, the filter loaded by the XOR),
// 2 VPSHUFB, 2 ADD into byte counters: 6 vector ALU uops instead of 8 (XOR,
// 2 AND, shift, 2 VPSHUFB, 2 ADD), plus 3 per chunk of 16 filters.
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

// Bit counts per byte of (x ^ f), from x's and f's nibble planes (each byte
// 0..15): two VPSHUFB lookups, added into the byte counters c.
BITLITE_AVX2 inline __m256i Count(__m256i c, __m256i xl, __m256i xh, const uint32_t* f,
                                  __m256i lut) {
  const __m256i fl = _mm256_load_si256(reinterpret_cast<const __m256i*>(f));
  const __m256i fh = _mm256_load_si256(reinterpret_cast<const __m256i*>(f + kBlockChunkWords));
  c = _mm256_add_epi8(c, _mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, fl)));
  return _mm256_add_epi8(c, _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, fh)));
}

// A pixel's 128-bit K chunk, broadcast to both lanes, as low and high nibble planes.
BITLITE_AVX2 inline void Nibbles(const uint32_t* row, __m256i low, __m256i* xl, __m256i* xh) {
  const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
  *xl = _mm256_and_si256(x, low);
  *xh = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
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

// Pixel row a against the block at f (nibble layout: 8 registers of 2 filters
// per K chunk and plane, chunks 128 words apart): t[h] = Totals of half block h
// (registers 4h..4h+3). 8 byte counters, the LUT, the mask and the pixel's two
// planes: 12 of the 16 ymm registers, so nothing is spilled in the loop.
BITLITE_AVX2 void Tile(const uint32_t* a, const uint32_t* f, int chunks, __m256i t[2]) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  t[0] = t[1] = _mm256_setzero_si256();
  for (int k0 = 0; k0 < chunks; k0 += kFlushSteps) {
    const int k1 = chunks - k0 < kFlushSteps ? chunks : k0 + kFlushSteps;
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
    __m256i c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (int k = k0; k < k1; ++k) {
      const uint32_t* fk = f + 2 * kBlockChunkWords * k;
      __m256i xl, xh;
      Nibbles(a + 4 * k, low, &xl, &xh);
      c0 = Count(c0, xl, xh, fk, lut);
      c1 = Count(c1, xl, xh, fk + 8, lut);
      c2 = Count(c2, xl, xh, fk + 16, lut);
      c3 = Count(c3, xl, xh, fk + 24, lut);
      c4 = Count(c4, xl, xh, fk + 32, lut);
      c5 = Count(c5, xl, xh, fk + 40, lut);
      c6 = Count(c6, xl, xh, fk + 48, lut);
      c7 = Count(c7, xl, xh, fk + 56, lut);
      // Keeps the counters in registers: GCC 12 otherwise spills three of them
      // to the stack (a load and a store each per step, about 10% slower).
      asm("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5), "+x"(c6), "+x"(c7));
    }
    t[0] = _mm256_add_epi32(t[0], Totals(c0, c1, c2, c3));
    t[1] = _mm256_add_epi32(t[1], Totals(c4, c5, c6, c7));
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
    const uint32_t* f = filters + 2L * b * kBlockFilters * kwords;  // nibble layout
    const int o0 = b * kBlockFilters;
    const int n = n_out - o0 < kBlockFilters ? n_out - o0 : kBlockFilters;
    for (int p = 0; p < n_pix; ++p) {
      __m256i t[2], lo, hi;
      Tile(patches + static_cast<long>(p) * kwords, f, chunks, t);
      FilterOrder(t[0], t[1], &lo, &hi);
      Store(lo, hi, o0, n, p, accum, ldc, fused);
    }
  }
}

}  // namespace bitlite

#endif  // x86

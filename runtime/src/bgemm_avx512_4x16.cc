// AVX-512 VPOPCNTDQ binary GEMM: 4 pixels x 16 filters register tile over the
// blocked 16x4 filter layout (bgemm.h).
//
// Per K chunk (128 bits) the tile loads the 4 filter vectors once and one
// broadcast patch chunk per pixel, then does XOR + VPOPCNTD + VPADDD into 16
// zmm accumulators: 3 vector uops per 512 binary MACs, the port-0/5 bound of
// these cores, and no masked tail because K is consumed 4 words at a time
// (kwords is always a multiple of 4). Each pixel's 4 accumulators are reduced
// by a 4x4 transpose-add to 16 int32 sums in filter order, then either stored
// or compared against the thresholds into 16 output bits (fused epilogue).
#if defined(__x86_64__) || defined(__i386__)

// GCC 12 flags the deliberately undefined source operand inside its own
// AVX-512 intrinsics (_mm512_undefined_epi32) when they are inlined into a
// target("avx512f") function; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "bgemm.h"

namespace bitlite {
namespace {

#define BITLITE_AVX512 __attribute__((target("avx512f,avx512vpopcntdq")))

constexpr int kTileP = 4;

// Lane L of vector i holds the 4 dword partial counts of filter 4L + i; returns
// the 16 totals with filter f in dword f.
BITLITE_AVX512 inline __m512i Reduce4(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// One pixel's XOR + popcount + add against the 4 filter vectors.
#define BITLITE_PIXEL_STEP(row, a0, a1, a2, a3)                                        \
  do {                                                                               \
    const __m512i x = _mm512_broadcast_i32x4(                                        \
        _mm_loadu_si128(reinterpret_cast<const __m128i*>((row) + 4 * k)));           \
    a0 = _mm512_add_epi32(a0, _mm512_popcnt_epi32(_mm512_xor_si512(x, f0)));          \
    a1 = _mm512_add_epi32(a1, _mm512_popcnt_epi32(_mm512_xor_si512(x, f1)));          \
    a2 = _mm512_add_epi32(a2, _mm512_popcnt_epi32(_mm512_xor_si512(x, f2)));          \
    a3 = _mm512_add_epi32(a3, _mm512_popcnt_epi32(_mm512_xor_si512(x, f3)));          \
  } while (0)

// The full 4-pixel tile with named accumulators: GCC keeps an array of
// __m512i on the stack (a load and two stores per add), named ones in zmm.
// 4 pixels (16 accumulators) is the widest tile GCC 12 compiles without
// spilling inside the loop (6 x 16 spilled 24 accumulators every chunk).
BITLITE_AVX512 inline void Tile4(const uint32_t* const* a, const uint32_t* f, int chunks,
                                 __m512i* sums) {
  const uint32_t *r0 = a[0], *r1 = a[1], *r2 = a[2], *r3 = a[3];
  __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00;
  __m512i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00;
  __m512i a30 = a00, a31 = a00, a32 = a00, a33 = a00;
  for (int k = 0; k < chunks; ++k, f += kBlockChunkWords) {
    const __m512i f0 = _mm512_load_si512(f);
    const __m512i f1 = _mm512_load_si512(f + 16);
    const __m512i f2 = _mm512_load_si512(f + 32);
    const __m512i f3 = _mm512_load_si512(f + 48);
    BITLITE_PIXEL_STEP(r0, a00, a01, a02, a03);
    BITLITE_PIXEL_STEP(r1, a10, a11, a12, a13);
    BITLITE_PIXEL_STEP(r2, a20, a21, a22, a23);
    BITLITE_PIXEL_STEP(r3, a30, a31, a32, a33);
  }
  sums[0] = Reduce4(a00, a01, a02, a03);
  sums[1] = Reduce4(a10, a11, a12, a13);
  sums[2] = Reduce4(a20, a21, a22, a23);
  sums[3] = Reduce4(a30, a31, a32, a33);
}

// Edge tiles of 1..3 pixels.
template <int P>
BITLITE_AVX512 inline void TileSmall(const uint32_t* const* a, const uint32_t* f, int chunks,
                                     __m512i* sums) {
  const uint32_t* r0 = a[0];
  const uint32_t* r1 = a[P > 1 ? 1 : 0];
  const uint32_t* r2 = a[P > 2 ? 2 : 0];
  __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00;
  __m512i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00;
  for (int k = 0; k < chunks; ++k, f += kBlockChunkWords) {
    const __m512i f0 = _mm512_load_si512(f);
    const __m512i f1 = _mm512_load_si512(f + 16);
    const __m512i f2 = _mm512_load_si512(f + 32);
    const __m512i f3 = _mm512_load_si512(f + 48);
    BITLITE_PIXEL_STEP(r0, a00, a01, a02, a03);
    if (P > 1) BITLITE_PIXEL_STEP(r1, a10, a11, a12, a13);
    if (P > 2) BITLITE_PIXEL_STEP(r2, a20, a21, a22, a23);
  }
  sums[0] = Reduce4(a00, a01, a02, a03);
  if (P > 1) sums[1] = Reduce4(a10, a11, a12, a13);
  if (P > 2) sums[2] = Reduce4(a20, a21, a22, a23);
}

// Runs a tile of P valid pixels starting at p0 and stores (or fuses) its sums.
template <int P>
BITLITE_AVX512 void TileAndStore(const uint32_t* patches, int p0, int kwords,
                                 const uint32_t* f, int o0, __mmask16 lanes, int32_t* accum,
                                 int ldc, const BlockedEpilogue* fused) {
  const uint32_t* a[kTileP];
  for (int p = 0; p < kTileP; ++p)
    a[p] = patches + static_cast<long>(p0 + (p < P ? p : P - 1)) * kwords;
  __m512i sums[kTileP];
  if (P == kTileP)
    Tile4(a, f, kwords / 4, sums);
  else
    TileSmall<P>(a, f, kwords / 4, sums);
  if (fused != nullptr && fused->thresholds != nullptr) {
    const __m512i thr = _mm512_maskz_loadu_epi32(lanes, fused->thresholds + o0);
    for (int p = 0; p < P; ++p)
      fused->bits[(p0 + p) * fused->bits_stride + o0 / 16] =
          static_cast<uint16_t>(_mm512_mask_cmpgt_epi32_mask(lanes, sums[p], thr));
    return;
  }
  if (fused != nullptr) {
    const __m512 mul = _mm512_maskz_loadu_ps(lanes, fused->mul + o0);
    const __m512 bias = _mm512_maskz_loadu_ps(lanes, fused->bias + o0);
    const __m512i lo = _mm512_set1_epi32(fused->clamp_lo);
    const __m512i hi = _mm512_set1_epi32(fused->clamp_hi);
    for (int p = 0; p < P; ++p) {
      const __m512i x = _mm512_max_epi32(_mm512_min_epi32(_mm512_slli_epi32(sums[p], 1), hi), lo);
      const __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), mul), bias);
      _mm512_mask_storeu_ps(fused->out + (p0 + p) * fused->out_stride + o0, lanes, y);
    }
    return;
  }
  for (int p = 0; p < P; ++p)
    _mm512_mask_storeu_epi32(accum + static_cast<long>(p0 + p) * ldc + o0, lanes, sums[p]);
}

}  // namespace

BITLITE_AVX512 void BgemmAvx512Blocked(const uint32_t* patches, int n_pix,
                                       const uint32_t* filters, int n_out, int kwords,
                                       int32_t* accum, int ldc, const BlockedEpilogue* fused) {
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  const long block_words = static_cast<long>(kwords) * kBlockFilters;
  for (int b = 0; b < blocks; ++b) {
    const int o0 = b * kBlockFilters;
    const int valid = n_out - o0 < kBlockFilters ? n_out - o0 : kBlockFilters;
    const __mmask16 lanes = static_cast<__mmask16>((1u << valid) - 1);
    const uint32_t* f = filters + b * block_words;
    // The block (kwords * 64 bytes) stays in L1 while the patch rows stream by.
    int p = 0;
    for (; p + kTileP <= n_pix; p += kTileP)
      TileAndStore<kTileP>(patches, p, kwords, f, o0, lanes, accum, ldc, fused);
    switch (n_pix - p) {
      case 3: TileAndStore<3>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 2: TileAndStore<2>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 1: TileAndStore<1>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      default: break;
    }
  }
}

}  // namespace bitlite

#endif  // x86

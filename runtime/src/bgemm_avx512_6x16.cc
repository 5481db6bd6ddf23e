// AVX-512 VPOPCNTDQ binary GEMM: 6 pixels x 16 filters register tile over the
// blocked 16x4 filter layout (bgemm.h).
//
// Per K chunk (128 bits) the tile loads the 4 filter vectors once and one
// broadcast patch chunk per pixel, then does XOR + VPOPCNTD + VPADDD into 24
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

constexpr int kTileP = 6;

// Lane L of vector i holds the 4 dword partial counts of filter 4L + i; returns
// the 16 totals with filter f in dword f.
BITLITE_AVX512 inline __m512i Reduce4(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// P pixels (rows a[0..P)) against one block of 16 filters.
template <int P>
BITLITE_AVX512 inline void Tile(const uint32_t* const* a, const uint32_t* f, int chunks,
                                __m512i* sums) {
  __m512i acc[P][4];
  for (int p = 0; p < P; ++p)
    for (int i = 0; i < 4; ++i) acc[p][i] = _mm512_setzero_si512();
  for (int k = 0; k < chunks; ++k, f += kBlockChunkWords) {
    const __m512i f0 = _mm512_load_si512(f);  // blocks are 64-byte aligned
    const __m512i f1 = _mm512_load_si512(f + 16);
    const __m512i f2 = _mm512_load_si512(f + 32);
    const __m512i f3 = _mm512_load_si512(f + 48);
    for (int p = 0; p < P; ++p) {
      const __m512i x = _mm512_broadcast_i32x4(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[p] + 4 * k)));
      acc[p][0] = _mm512_add_epi32(acc[p][0], _mm512_popcnt_epi32(_mm512_xor_si512(x, f0)));
      acc[p][1] = _mm512_add_epi32(acc[p][1], _mm512_popcnt_epi32(_mm512_xor_si512(x, f1)));
      acc[p][2] = _mm512_add_epi32(acc[p][2], _mm512_popcnt_epi32(_mm512_xor_si512(x, f2)));
      acc[p][3] = _mm512_add_epi32(acc[p][3], _mm512_popcnt_epi32(_mm512_xor_si512(x, f3)));
    }
  }
  for (int p = 0; p < P; ++p) sums[p] = Reduce4(acc[p][0], acc[p][1], acc[p][2], acc[p][3]);
}

template <int P>
BITLITE_AVX512 void TileAndStore(const uint32_t* patches, int p0, int kwords,
                                 const uint32_t* f, int o0, __mmask16 lanes, int32_t* accum,
                                 int ldc, const BlockedEpilogue* fused) {
  const uint32_t* a[P];
  for (int p = 0; p < P; ++p) a[p] = patches + static_cast<long>(p0 + p) * kwords;
  __m512i sums[P];
  Tile<P>(a, f, kwords / 4, sums);
  if (fused != nullptr) {
    const __m512i thr = _mm512_maskz_loadu_epi32(lanes, fused->thresholds + o0);
    for (int p = 0; p < P; ++p)
      fused->bits[(p0 + p) * fused->bits_stride + o0 / 16] =
          static_cast<uint16_t>(_mm512_mask_cmpgt_epi32_mask(lanes, sums[p], thr));
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
      case 5: TileAndStore<5>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 4: TileAndStore<4>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 3: TileAndStore<3>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 2: TileAndStore<2>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      case 1: TileAndStore<1>(patches, p, kwords, f, o0, lanes, accum, ldc, fused); break;
      default: break;
    }
  }
}

}  // namespace bitlite

#endif  // x86

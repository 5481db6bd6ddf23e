// AVX-512 VPOPCNTDQ fused k-bit tiles (kbit_tiles.h): 4 pixels x 64 filters (4 blocks of
// 16) per tile where their filters fit L1 (else 32 or 16), "dwords 16" filters.
//
// Per K word: the 4 blocks' filter vectors are loaded once, each pixel's word broadcast
// once (a load, no shuffle), then XOR + VPOPCNTD + VPADDD into 16 zmm accumulators: 3
// vector uops per 512 binary MACs, the port-0/5 bound, and no reduction at the end (each
// accumulator already holds 16 filters' sums). 64 filters per tile share one pass over
// the taps and the loop control, which on short receptive fields (3x3 over 128
// channels: 36 words a plane) would otherwise take a tenth of the ports.
#if defined(__x86_64__) || defined(__i386__)

#include "kbit_tiles.h"

// GCC 12's AVX-512 intrinsics warn about their own undefined operands when inlined
// (as in bgemm_avx512_4x16.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define BITLITE_AVX512 __attribute__((target("avx512f,avx512vpopcntdq")))

namespace bitlite {
namespace {

using Acc = __m512i[kKbitTilePixels][kKbitTileBlocks];

// P of a tile's first P pixels against NB blocks of 16 filters (block b at f + b * bw).
// The loops over pixels and blocks have constant bounds and unroll, so GCC keeps the
// accumulators in registers.
template <int P, int NB, int kPlanes>
BITLITE_AVX512 inline void TileP(const KbitTiles& t, int tile, const uint32_t* f, long bw,
                                 Acc& acc) {
  for (int j = 0; j < P; ++j)
    for (int b = 0; b < NB; ++b) acc[j][b] = _mm512_setzero_si512();
  const uint32_t* const* base = t.pixels + static_cast<long>(tile) * kPlanes * kKbitTilePixels;
  for (int i = kPlanes - 1; i >= 0; --i) {
    if (i < kPlanes - 1)
      for (int j = 0; j < P; ++j)
        for (int b = 0; b < NB; ++b) acc[j][b] = _mm512_add_epi32(acc[j][b], acc[j][b]);
    const uint32_t* fk = f;
    for (int r = 0; r < t.taps; ++r) {
      const uint32_t* x[P];
      const long off = t.tap_offsets[r];
      for (int j = 0; j < P; ++j) x[j] = base[i * kKbitTilePixels + j] + off;
      for (int w = 0; w < t.words; ++w, fk += 16) {
        __m512i fv[NB];
        for (int b = 0; b < NB; ++b) fv[b] = _mm512_load_si512(fk + b * bw);
        for (int j = 0; j < P; ++j) {
          const __m512i xv = _mm512_set1_epi32(static_cast<int>(x[j][w]));
          for (int b = 0; b < NB; ++b)
            acc[j][b] = _mm512_add_epi32(acc[j][b], _mm512_popcnt_epi32(_mm512_xor_si512(xv, fv[b])));
        }
      }
    }
  }
}

// The level of a key (P or -P) and its bits in each output plane (LCE's bit 1 = -1 =
// the level's bit is 0; lanes past n_out are 0).
BITLITE_AVX512 inline void StoreLevelBits(const KbitTiles& t, __m512i key, int o0,
                                          __mmask16 lanes, long q) {
  const __m512i one = _mm512_set1_epi32(1);
  __m512i count = _mm512_setzero_si512();
  for (int j = 0; j < t.levels; ++j) {
    const __m512i thr = _mm512_maskz_loadu_epi32(lanes, t.key_thresholds + j * t.n_out + o0);
    count = _mm512_mask_add_epi32(count, _mm512_cmpgt_epi32_mask(key, thr), count, one);
  }
  // invert is 0 or -1: (n ^ -1) + levels + 1 = levels - n
  const __m512i inv = _mm512_maskz_loadu_epi32(lanes, t.invert + o0);
  const __m512i level = _mm512_add_epi32(_mm512_xor_si512(count, inv),
                                         _mm512_and_si512(inv, _mm512_set1_epi32(t.levels + 1)));
  uint16_t* dst = t.bits + q * t.bits_stride + o0 / 16;
  for (int i = 0; i < t.out_planes; ++i)
    dst[i * t.bits_plane_stride] = static_cast<uint16_t>(
        _mm512_mask_testn_epi32_mask(lanes, level, _mm512_set1_epi32(1 << i)));
}

// The epilogue of one block (16 filters from o0) of a tile whose first n pixels hold P.
BITLITE_AVX512 inline void Epilogue(const KbitTiles& t, int tile, int n, int o0, __m512i* p) {
  const int valid = t.n_out - o0 < 16 ? t.n_out - o0 : 16;
  const __mmask16 lanes = static_cast<__mmask16>((1u << valid) - 1);
  for (int j = 0; j < n; ++j) {
    const int32_t* fix = t.fix[tile * kKbitTilePixels + j];
    if (fix != nullptr) p[j] = _mm512_add_epi32(p[j], _mm512_maskz_loadu_epi32(lanes, fix + o0));
  }
  if (t.out_planes == 0) {  // float (never pooled)
    const __m512 mul = _mm512_maskz_loadu_ps(lanes, t.mul + o0);
    const __m512 bias = _mm512_maskz_loadu_ps(lanes, t.bias + o0);
    const __m512i hi = _mm512_set1_epi32(t.hi), zero = _mm512_setzero_si512();
    for (int j = 0; j < n; ++j) {
      const __m512i x = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(p[j], p[j]), zero), hi);
      const __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), mul), bias);
      _mm512_mask_storeu_ps(t.out + (static_cast<long>(tile) * kKbitTilePixels + j) * t.n_out + o0,
                            lanes, y);
    }
    return;
  }
  // neg is 0 or -1: (P ^ neg) - neg is P or -P
  const __m512i neg = _mm512_maskz_loadu_epi32(lanes, t.key_sign + o0);
  for (int j = 0; j < n; ++j) p[j] = _mm512_sub_epi32(_mm512_xor_si512(p[j], neg), neg);
  if (t.pool) {  // n == 4
    StoreLevelBits(t, _mm512_max_epi32(_mm512_max_epi32(p[0], p[1]), _mm512_max_epi32(p[2], p[3])),
                   o0, lanes, tile);
    return;
  }
  for (int j = 0; j < n; ++j)
    StoreLevelBits(t, p[j], o0, lanes, static_cast<long>(tile) * kKbitTilePixels + j);
}

// Tiles of NB blocks from filter block b0; a last tile of one pixel (a dense layer's)
// runs alone, the others with all 4 (repeats fill a short last group: its extra
// pixels' outputs are not stored).
template <int NB, int kPlanes>
BITLITE_AVX512 void Blocks(const KbitTiles& t, int b0, long bw) {
  const uint32_t* f = t.filters + b0 * bw;
  for (int tile = 0; tile < t.tiles; ++tile) {
    const int n = tile == t.tiles - 1 && !t.pool ? t.last : kKbitTilePixels;
    Acc acc;
    if (n == 1)
      TileP<1, NB, kPlanes>(t, tile, f, bw, acc);
    else
      TileP<kKbitTilePixels, NB, kPlanes>(t, tile, f, bw, acc);
    for (int b = 0; b < NB; ++b) {
      __m512i p[kKbitTilePixels];
      for (int j = 0; j < kKbitTilePixels; ++j) p[j] = acc[j < n ? j : 0][b];
      Epilogue(t, tile, n, (b0 + b) * 16, p);
    }
  }
}

// A tile's filter blocks stay in L1 while it runs over its k planes (each plane reads
// them all again): as many blocks per tile, up to 4, as fit this many bytes.
constexpr long kTileFilterBytes = 40 << 10;

template <int kPlanes>
BITLITE_AVX512 void Body(const KbitTiles& t) {
  const int blocks = (t.n_out + 15) / 16;
  const long bw = static_cast<long>(t.taps) * t.words * 16;  // words per block
  const long block_bytes = bw * static_cast<long>(sizeof(uint32_t));
  const int wide = block_bytes * 4 <= kTileFilterBytes ? 4 : block_bytes * 2 <= kTileFilterBytes ? 2 : 1;
  int b = 0;
  if (wide == 4)
    for (; b + 4 <= blocks; b += 4) Blocks<4, kPlanes>(t, b, bw);
  if (wide >= 2)
    for (; b + 2 <= blocks; b += 2) Blocks<2, kPlanes>(t, b, bw);
  for (; b < blocks; ++b) Blocks<1, kPlanes>(t, b, bw);
}

}  // namespace

BITLITE_AVX512 void KbitTilesAvx512(const KbitTiles& t) {
  switch (t.planes) {
    case 1: Body<1>(t); break;
    case 2: Body<2>(t); break;
    case 3: Body<3>(t); break;
    default: Body<4>(t); break;
  }
}

}  // namespace bitlite

#endif  // x86

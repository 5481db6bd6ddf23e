// The fused k-bit GEMM (issue 16): BitliteKbitBconv2d computed tile by tile with its
// whole epilogue in registers, for kernels that have one (AVX-512).
//
// The banded path (kbit.cc) runs each activation plane through the binary GEMM, stores
// the int32 counts a_i and reads them back in the epilogue: for a W1A2 layer that is
// two passes over im2col patches, two count stores and an epilogue pass per pixel. Here
// a tile of 4 conv pixels meets up to 64 filters for all k planes at once, reading
// each tap where it lies in the (zero-padded) input, no im2col; P = sum_i 2^i a_i is formed in the
// accumulators themselves (plane k-1 first, doubled before each next plane: the same
// integer sum), and the tile ends in the epilogue: P's zero-padding fix, the max pool
// when the tile's 4 pixels are one pool window (a smaller window repeats a pixel: max
// is idempotent), then the level's bits or LCE's float transform. Nothing but the
// output leaves the registers.
//
// Filters, "dwords 16": blocks of 16 filters, and inside a block, per K word k, the 16
// filters' word k (filter 16 b + l's word k at block b's [16 k + l]). One broadcast input
// word then meets 16 filters in one XOR, and the accumulators hold the 16 sums in
// filter order (no transpose at the end, unlike bgemm.h's blocked 16x4 layout).
#ifndef BITLITE_KBIT_TILES_H_
#define BITLITE_KBIT_TILES_H_

#include <cstddef>
#include <cstdint>

namespace bitlite {

constexpr int kKbitTilePixels = 4;
constexpr int kKbitTileBlocks = 4;  // blocks of 16 filters per tile

struct KbitTiles {
  // K = taps x words: tile t's pixel j (< 4) in plane i reads tap r's `words` words at
  // pixels[(t * planes + i) * 4 + j] + tap_offsets[r] (in a zero-padded copy of the
  // input where the convolution pads: every tap a fixed offset from its pixel).
  const uint32_t* const* pixels = nullptr;
  const long* tap_offsets = nullptr;
  int tiles = 0, planes = 0, taps = 0, words = 0;
  const uint32_t* filters = nullptr;  // "dwords 16" (above), taps * words words per filter
  int n_out = 0;
  const int32_t* const* fix = nullptr;  // [tiles * 4]: the pixel's fix row (n_out) or null
  // true: a tile's pixels are one pool window and make one output pixel; false: each
  // pixel is an output pixel, all 4 of every tile but the last, which has `last`.
  bool pool = false;
  int last = kKbitTilePixels;
  // Planes output (out_planes > 0): KbitPlan's key_sign, key_thresholds [levels][n_out]
  // and invert; the bits of output pixel q (from the first), plane i, channels
  // [16 b, 16 b + 16) at bits[q * bits_stride + i * bits_plane_stride + b].
  int out_planes = 0, levels = 0;
  const int32_t *key_sign = nullptr, *key_thresholds = nullptr, *invert = nullptr;
  uint16_t* bits = nullptr;
  long bits_stride = 0, bits_plane_stride = 0;
  // Float output: out[q * n_out + c] = float(clamp(2P, 0, hi)) * mul[c] + bias[c].
  const float *mul = nullptr, *bias = nullptr;
  int32_t hi = 0;
  float* out = nullptr;
};

using KbitTilesFn = void (*)(const KbitTiles& t);

// Words of the "dwords 16" layout for n_out filters of k words.
size_t DwordFilterWords(int n_out, int k);
// Row-major filters [n_out][row_stride] (the first k words of each row) -> "dwords 16"
// (padding filters are zero).
void PackFiltersDwords16(const uint32_t* rows, int n_out, int k, int row_stride, uint32_t* out);

#if defined(__x86_64__) || defined(__i386__)
void KbitTilesAvx512(const KbitTiles& t);  // AVX-512 VPOPCNTDQ CPUs only
#endif

}  // namespace bitlite

#endif  // BITLITE_KBIT_TILES_H_

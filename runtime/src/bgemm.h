// Binary GEMM kernels: the inner loop of a binary convolution.
//
//   accum[p * ldc + o] = sum_{k < kwords} popcount(patches[p*kwords + k] XOR
//                                                  filters[o*kwords + k])
//
// i.e. the number of sign disagreements between an im2col patch row and a
// filter row, 32 channels per uint32 word. `kwords` is always a multiple of
// kKWordAlign (rows are zero-padded; 0 XOR 0 adds nothing). Each kernel is an
// exact integer computation, so every kernel must agree bit for bit with the
// generic one; tests check that on random tensors.
//
// Two filter layouts exist:
//  * row-major [n_out][kwords] (generic, AVX2 and NEON kernels);
//  * "blocked 16x4" (the AVX-512 kernel): blocks of 16 filters, and inside a
//    block, for each 4-word (128-bit) chunk of K, 64 words such that 512-bit
//    vector i (0..3) holds in its 128-bit lane L the chunk of filter 4L + i.
//    One broadcast 128-bit patch chunk then meets 16 filters in 4 XORs, and a
//    4x4 transpose-add at the end yields the 16 sums in filter order. The plan
//    packs this layout once, 64-byte aligned (PackFiltersBlocked16);
//  * "blocked 16x4 nibbles" (the AVX2 kernel): the blocked layout with each
//    64-word K chunk split in two planes, the low nibble of every byte (f & 0x0f)
//    then the high one ((f >> 4) & 0x0f), 128 words per chunk. The AVX2 kernel
//    looks bit counts up per nibble: with the filters' nibbles split once at
//    prepare, (x ^ f) & 0x0f = (x & 0x0f) ^ (f & 0x0f) needs the mask and shift on
//    the patch only, once per pixel chunk instead of once per filter register.
#ifndef BITLITE_BGEMM_H_
#define BITLITE_BGEMM_H_

#include <cstddef>
#include <cstdint>

namespace bitlite {

constexpr int kKWordAlign = 4;  // 128 bits: one NEON / SSE register
constexpr int kBlockFilters = 16;  // filters per block of the blocked layout
constexpr int kBlockChunkWords = kBlockFilters * kKWordAlign;  // 64 words per K chunk

using BgemmFn = void (*)(const uint32_t* patches, int n_pix, const uint32_t* filters,
                         int n_out, int kwords, int32_t* accum, int ldc);

// Fused epilogue of a blocked kernel: the output transform applied to each
// pixel's 16 sums while they are still in registers, instead of storing the
// int32 accumulators (for output channel o of pixel p):
//  * bits:  bit o of bits[p * bits_stride + o / 16] = accum > thresholds[o]
//    (16-bit halves of the bitpacked output words, little-endian; lanes at
//    or past n_out are written as 0);
//  * float: out[p * out_stride + o] = float(clamp(2 * accum, lo, hi)) * mul[o] + bias[o]
//    (multiply, then add: the same two roundings as the scalar transform).
struct BlockedEpilogue {
  const int32_t* thresholds = nullptr;  // set: bits
  uint16_t* bits = nullptr;
  long bits_stride = 0;  // in uint16 units
  const float* mul = nullptr;  // set: float
  const float* bias = nullptr;
  int32_t clamp_lo = 0, clamp_hi = 0;
  float* out = nullptr;
  long out_stride = 0;  // in floats
};

// patches: n_pix rows of `kwords` words (16-byte aligned rows); filters: the
// blocked layout of n_out filters (ceil(n_out / 16) blocks of kwords / 4 chunks).
using BgemmBlockedFn = void (*)(const uint32_t* patches, int n_pix, const uint32_t* filters,
                                int n_out, int kwords, int32_t* accum, int ldc,
                                const BlockedEpilogue* fused);

struct BgemmKernel {
  const char* name;
  BgemmFn run;                        // row-major filters; null: the reference convolution
  BgemmBlockedFn run_blocked = nullptr;  // set: use the blocked layout instead of `run`
  bool interleave4 = false;  // run_blocked reads patches interleaved by InterleavePatches4
  bool fuses = false;        // run_blocked implements BlockedEpilogue
  bool nibbles = false;      // run_blocked reads the "blocked 16x4 nibbles" layout
  // The least work (binary MACs) worth a thread of its own: about 20 us of this
  // kernel on one core, so that waking a pool thread (microseconds) pays off.
  double min_macs_per_thread = 1e6;
};

// Words of the blocked layout for n_out filters of kwords words.
size_t BlockedFilterWords(int n_out, int kwords);
// Row-major [n_out][kwords] -> blocked 16x4 (padding filters are zero).
void PackFiltersBlocked16(const uint32_t* rows, int n_out, int kwords, uint32_t* out);

// The nibble-plane variant (twice the words; see the layout notes above).
size_t NibbleFilterWords(int n_out, int kwords);
void PackFiltersNibbles16(const uint32_t* rows, int n_out, int kwords, uint32_t* out);

// Rows [n_pix][kwords] -> groups of 4 pixels, each K chunk of a group as 4
// consecutive 128-bit pieces (pixel 0..3), so one 64-byte load (NEON LD1 x4)
// fetches a chunk of 4 pixels. A last partial group is padded with zero rows.
// `out` holds ceil(n_pix / 4) * 4 * kwords words.
void InterleavePatches4(const uint32_t* rows, int n_pix, int kwords, uint32_t* out);

// Portable C++ (64-bit popcount). Always available.
void BgemmGeneric(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);

#if defined(__x86_64__) || defined(__i386__)
// Compiled with function target attributes; call only if the CPU has them.
void BgemmAvx2(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
void BgemmAvx512(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
void BgemmAvx2Blocked(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int,
                      const BlockedEpilogue*);
void BgemmAvx512Blocked(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int,
                        const BlockedEpilogue*);
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
void BgemmNeon(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
#endif
#if defined(__aarch64__)
// Blocked 16x4 filters, InterleavePatches4 patches, fused epilogue.
void BgemmNeonBlocked(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int,
                      const BlockedEpilogue*);
// Its bitpacked output for one full block of 16 filters (blocked layout at
// `block`) and n_groups (>= 1) whole groups of 4 interleaved pixels: bit o of
// bits[p * bits_stride] = sum(pixel p, filter o) > thresholds[o]. Sums must fit
// 16 signed bits: kwords <= kNeonBitsMaxKWords.
constexpr int kNeonBitsMaxKWords = 255 * kKWordAlign;  // sums <= 32640
void BgemmNeonBits4x8(const uint32_t* patches, int n_groups, const uint32_t* block, int kwords,
                      const int32_t* thresholds, uint16_t* bits, long bits_stride);
#endif

// The kernel names this build knows, whether or not this CPU can run them.
// "reference" is not a GEMM kernel: it selects the direct convolution oracle.
// Returns nullptr (and sets *error) when `name` is unknown or this CPU lacks
// the instructions. `name == nullptr` picks the best kernel for this CPU.
const BgemmKernel* SelectKernel(const char* name, const char** error);

// The name the current environment selects (BITLITE_KERNEL or the best one).
const char* SelectedKernelName();

}  // namespace bitlite

#endif  // BITLITE_BGEMM_H_

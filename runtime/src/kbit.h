// bitlite's k-bit ops (issue 16), independent of TFLite's structs like bconv.h.
//
// A k-bit activation q in {0 .. 2^k - 1} is carried as k bitpacked planes on the batch
// axis, [k * N, H, W, words]: plane i of sample n is image i * N + n, and its bit for a
// channel is LCE's sign bit of q's bit i (bit 1 = -1 = q's bit i is 0; bits past the
// channels are 0). With binary weights w (+-1) over a receptive field of n taps*channels,
//   q . w = sum_i 2^i (s_i . w + sum w) / 2 = const - P,   P = sum_i 2^i a_i,
// a_i the sign disagreements of plane i (what LceBconv2d's GEMM counts). P is also, exactly,
// the count a thermometer-coded LceBconv2d (the 2^k - 1 equal planes concatenated on the
// channel axis, the portable export) computes over the same input, so every output
// transform of that convolution is a function of P: the export evaluates it once per
// count and gives us either LCE's float transform (post multiplier and bias over the
// thermometer depth) or the next layer's k-bit level as thresholds on P.
//
// With a kernel that has fused tiles (AVX-512, kbit_tiles.h) and a pool window of at
// most 4 pixels (2x2, or none), BitliteKbitBconv2d runs as one pass: each tile of 4 conv
// pixels x up to 64 filters reads its taps in the (zero-padded) input, forms P for all
// k planes in its accumulators and ends in the epilogue below, in registers. Otherwise it
// runs the k planes through the existing binary GEMM (RunBConv over
// the k * N plane images, raw int32 counts; on large layers per band of output rows,
// RunBConvRange, so that a band's counts stay in cache) and then one epilogue pass per
// output pixel combines them: P, the zero-padding fix (a zero-padded activation is q = 0, all planes -1,
// whereas the GEMM reads outside taps as +1; precomputed per border pattern), an
// optional max pool on P (per channel by max or min: the float value it stands for
// rises or falls with P), and the output: float, or the next layer's planes straight
// from thresholds on P, compare masks giving the output bits (kbit_epilogue.h). The
// epilogue is split over the threads; the bytes do not depend on their number.
// BitliteKbitQuantize makes the planes of the first k-bit layer from float:
// q = #{j : !(x + t_j < 0)}, the same float adds and sign test as the thermometer export's
// ADD + LceQuantize.
// With the reference kernel both ops run the plain per-pixel C++ (the oracle).
#ifndef BITLITE_KBIT_H_
#define BITLITE_KBIT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bconv.h"

namespace bitlite {

constexpr int kMaxKbitPlanes = 4;

struct KbitOptions {  // FlexBuffer custom options of BitliteKbitBconv2d
  int32_t channels_in = 0;
  int32_t planes = 0;      // k of the input
  int32_t out_planes = 0;  // 0: float output, else k of the output
  int32_t padding = 0;     // 0 = SAME (zero activation outside), 1 = VALID
  int32_t stride_height = 1, stride_width = 1;
  // Max pool after the convolution (planes output only); pool_height 0: none.
  int32_t pool_height = 0, pool_width = 0, pool_stride_height = 1, pool_stride_width = 1;
  int32_t pool_padding = 1;  // 0 = SAME, 1 = VALID
};

std::string ParseKbitOptions(const uint8_t* buffer, size_t length, KbitOptions* out);

// Per output channel flags (input 5 of the op, planes output).
constexpr int32_t kKbitPoolMin = 1;  // pool takes the least P (the value falls with P)
constexpr int32_t kKbitFalls = 2;    // the level falls with P: q = #{j : P < T_j}
                                     // (else rises: q = #{j : P > T_j})

struct KbitPlan {
  KbitOptions opt;
  BConvPlan conv;  // over the k * N plane images; int32 output = the count a_i
  int batch = 0;   // N
  int out_c = 0;
  int out_h = 0, out_w = 0;  // after the pool
  int pool_pad_top = 0, pool_pad_left = 0;
  int64_t depth = 0;  // (2^k - 1) * taps * channels_in: P's largest value
  // Per tap and output channel, channels_in - 2 * (set filter bits): what a zero-padded
  // tap changes in each plane's count (taps-major, so the fix loop runs over channels).
  std::vector<int32_t> tap_fix;
  // The same summed over a border pixel's outside taps and times 2^k - 1 (P's fix):
  // fix_rows [patterns][out_c], one row per distinct set of outside taps, and per conv
  // pixel of an image (y * out_w + x, before the pool) its row or -1 (all taps inside).
  std::vector<int32_t> fix_rows, fix_index;
  // Bands (optimized kernels): band_rows > 0 runs the GEMM and the epilogue per band of
  // band_rows output rows of one image, the planes' counts of its conv rows (at most
  // band_pixels per plane) in a small buffer that stays in cache; 0: whole images.
  int band_rows = 0;
  long band_pixels = 0;
  // float output: LCE's transform of P over the thermometer depth
  std::vector<float> mul, bias;
  // planes output: thresholds [out_c][levels], flags [out_c]
  int levels = 0;
  std::vector<int32_t> thresholds, flags;
  // The same, as RunKbit applies them: the pool takes the max of key = P, or of -P
  // where key_sign is -1 (else 0), and
  // q = (invert ? levels - n : n), n = #{j : key > key_thresholds[j][c]} (planar;
  // invert is 0 or -1).
  std::vector<int32_t> key_sign, key_thresholds, invert;
  // The filters in the fused tiles' "dwords 16" layout (kbit_tiles.h), taps x channel
  // words per filter; packed by KeepKbitFiltersFor for a kernel that has tiles, else empty.
  AlignedWords tile_filters;
};

struct KbitTensors {
  const int* in_dims;      // [k * N, H, W, words]
  const int* filter_dims;  // [O, fh, fw, words]
  const int32_t* filter;
  const float* post_mul = nullptr;  // float output
  const float* post_bias = nullptr;
  const int32_t* thresholds = nullptr;  // planes output: [O][2^out_planes - 1]
  const int32_t* flags = nullptr;       // planes output: [O]
};

// "" or what is unsupported.
std::string PlanKbit(const KbitOptions& opt, const KbitTensors& t, KbitPlan* plan);
// [N, out_h, out_w, O] (float) or [out_planes * N, out_h, out_w, words].
void KbitOutputDims(const KbitPlan& plan, int dims[4]);

// Scratch RunKbit needs, allocated at prepare: the GEMM's counts (per thread, one band's
// where the plan has bands); for the oracle
// (reference kernel) also the pre-pool keys and one pixel's rows.
struct KbitScratch {
  std::vector<int32_t> counts;  // [planes][conv pixels][out_c]; bands: per task, one band's
  std::vector<int32_t> sums;    // oracle: key per pre-pool pixel and channel
  std::vector<int32_t> fix;     // oracle: one pixel's zero-padding fix per channel
  std::vector<int32_t> key;     // oracle: one output pixel's pooled key, then its level
  // The fused tiles (kbit_tiles.h), where the kernel has them: per thread, one block of
  // tiles' pixel pointers; the zero-padded input (where the convolution pads; its
  // border stays zero) and each tap's offset in it.
  std::vector<const uint32_t*> tile_pixels;
  std::vector<uint32_t> tile_input;
  std::vector<long> tile_offsets;
  BConvWorkspace workspace;
  bool Reserve(const KbitPlan& plan, const BgemmKernel* kernel, int threads);
};

// `output`: float* or int32_t* per plan. False: out of memory (scratch not reserved).
bool RunKbit(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads,
             const int32_t* input, void* output, KbitScratch* scratch);

// Prepare, once it has chosen the kernel: KeepFiltersFor on the GEMM's plan, and the
// fused tiles' filters packed where the kernel has tiles (else none). False: out of
// memory.
bool KeepKbitFiltersFor(const BgemmKernel* kernel, KbitPlan* plan);

// Whether RunKbit runs `plan` with `kernel` over `num_threads` on the fused tiles
// (kbit_tiles.h); else GEMM, then epilogue.
bool KbitUsesTiles(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads);

// BitliteKbitQuantize: x [rows, channels] float, offsets [levels][channels] (levels =
// 2^planes - 1) -> out [planes][rows][words], with `kernel`'s vector code (the plain
// oracle for the reference kernel) over up to `num_threads` threads.
void KbitQuantize(const float* x, long rows, int channels, const float* offsets, int planes,
                  int32_t* out, const BgemmKernel* kernel, int num_threads);

// For tests: the least elements (pixels x channels x planes) per thread before the
// epilogue or the quantize is split (negative: the default; 0 splits every one).
void SetKbitMinElementsPerThread(long elements);

// For tests: the least conv pixels per plane of a band, read by PlanKbit (negative: the
// default; small values make bands of every layer with more than one output row).
void SetKbitBandPixels(long pixels);

}  // namespace bitlite

#endif  // BITLITE_KBIT_H_

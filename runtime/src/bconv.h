// Binary 2D convolution (LceBconv2d) independent of TFLite's structs, so the
// same code runs inside the registered op and inside the standalone C++
// checks and fuzzers.
//
// Semantics follow LCE (larq_compute_engine/core/bconv2d): input and filters
// are bitpacked along channels (bit 1 = -1), the accumulator counts sign
// disagreements over the receptive field, and the output is
//   float:     float(clamp(accum << 1)) * mul + bias        (fused, see below)
//   int8:      saturate(round(the float expression))
//   bitpacked: bit = accum > threshold
//   int32:     accum itself (OutputType::kInt32)
// Out-of-bounds taps: pad_values=1 (or VALID) read as +1 (bit 0). SAME with
// pad_values=0 must act as 0: for float output without activation (and no
// groups) we add LCE's correction term in float after the transform
// (bit-exact with LCE's default kernel); otherwise each outside tap adds
// channels/2 to the accumulator (bit-exact with LCE's reference kernel, the
// only LCE kernel that runs grouped convolutions), exact only for an even
// number of channels per group, so an odd one is refused at prepare.
#ifndef BITLITE_BCONV_H_
#define BITLITE_BCONV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bgemm.h"

namespace bitlite {

// kInt32: the raw accumulators (sign disagreements), no transform and no
// zero-padding semantics (pad_values must be 1, or VALID): bitlite's k-bit op
// (kbit.h) combines several planes' counts itself.
enum class OutputType { kFloat32, kInt8, kBitpacked, kInt32 };
enum class Activation { kNone = 0, kRelu = 1, kReluN1To1 = 2, kRelu6 = 3 };
enum class ZeroPadMode { kNone, kFloatCorrection, kIntegerAccum };

struct BConvOptions {  // as read from the FlexBuffer custom options
  int32_t channels_in = 0;
  int32_t dilation_height = 1, dilation_width = 1;
  int32_t activation = 0;  // tflite ActivationFunctionType
  int32_t pad_values = 0;
  int32_t padding = 0;  // tflite Padding: 0 = SAME, 1 = VALID
  int32_t stride_height = 1, stride_width = 1;
};

// Reads and validates the options. Returns "" or an error message.
std::string ParseBConvOptions(const uint8_t* buffer, size_t length, BConvOptions* out);

struct BConvShape {
  int batch = 0, in_h = 0, in_w = 0, in_words = 0;  // input [N, H, W, words]
  int out_c = 0, fh = 0, fw = 0, words_per_group = 0;  // filter [O, fh, fw, words]
  int out_h = 0, out_w = 0;
  int pad_top = 0, pad_left = 0;
  int groups = 1, channels_per_group = 0;
};

// Everything eval needs, computed once at prepare.
// A 64-byte aligned word buffer (vector loads of whole cache lines), copyable.
class AlignedWords {
 public:
  AlignedWords() = default;
  AlignedWords(const AlignedWords& o) { *this = o; }
  AlignedWords& operator=(const AlignedWords& o);
  void assign_zero(size_t n);  // n zero words
  uint32_t* data() { return data_.get(); }
  const uint32_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint32_t* p) const;
  };
  std::unique_ptr<uint32_t, Free> data_;
  size_t size_ = 0;
};

struct BConvPlan {
  BConvOptions opt;
  BConvShape shape;
  OutputType out_type = OutputType::kFloat32;
  ZeroPadMode zero_pad = ZeroPadMode::kNone;
  // Output transform (float / int8), fused exactly as LCE fuses it.
  int32_t clamp_min = 0, clamp_max = 0;
  std::vector<float> mul, bias;
  std::vector<float> correction_mul;  // -post_activation_multiplier
  std::vector<int32_t> thresholds;    // bitpacked output
  // Filters, copied at prepare: per group, rows of kwords (zero-padded) words.
  int kwords = 0;
  std::vector<uint32_t> packed_filters;
  // The same filters in the blocked 16x4 layout (bgemm.h), per group
  // (group g at g * blocked_group_words), for kernels with run_blocked.
  AlignedWords blocked_filters;
  size_t blocked_group_words = 0;
#if defined(__x86_64__) || defined(__i386__)
  // The "blocked 16x4 nibbles" layout (bgemm.h) for the AVX2 kernel, per group
  // (group g at g * 2 * blocked_group_words).
  AlignedWords nibble_filters;
#endif
  std::vector<uint32_t> raw_filters;  // OHWI as in the model (for the oracle)
  std::vector<int32_t> tap_popcount;  // [out_c][fh * fw]: set bits per tap
};

struct BConvTensors {  // raw inputs to plan construction
  const int* in_dims;   // 4
  const int* filter_dims;  // 4
  const int32_t* filter;
  const float* post_mul;   // out_c or null
  const float* post_bias;  // out_c or null
  const int32_t* thresholds;  // out_c or null
  OutputType out_type;
  float out_scale;  // int8 output
  int32_t out_zero_point;
};

// Validates shapes and options against each other, fills `plan`.
// Returns "" or an error message that says what is unsupported.
std::string PlanBConv(const BConvOptions& opt, const BConvTensors& t, BConvPlan* plan);

// Output dimensions [N, out_h, out_w, C or words].
void BConvOutputDims(const BConvPlan& plan, int dims[4]);

// Prepare, once it has chosen the kernel: frees the filter copy that kernel does
// not read (x86: the nibble planes unless it is AVX2's, else the blocked layout),
// so a plan holds one blocked copy. The plan then runs with `kernel` (and the
// reference or generic kernels) only.
void KeepFiltersFor(const BgemmKernel* kernel, BConvPlan* plan);

// Scratch memory for RunBConv, one slot per thread, allocated before the run (at
// prepare) so that a run with it allocates nothing; the pool's threads are started
// then too. Without one, RunBConv grows per-thread scratch on first use.
class BConvWorkspace {
 public:
  BConvWorkspace();
  ~BConvWorkspace();
  BConvWorkspace(const BConvWorkspace&) = delete;
  BConvWorkspace& operator=(const BConvWorkspace&) = delete;
  // Sizes every slot for `plan` run by `kernel` on up to `threads` threads (at most
  // 64). False: out of memory. Not thread-safe; one run at a time may use it.
  bool Reserve(const BConvPlan& plan, const BgemmKernel* kernel, int threads);
  struct Impl;
  std::unique_ptr<Impl> impl;
};

// Runs the convolution. `kernel->run == nullptr` selects the direct (oracle)
// implementation. `output` is float*, int8_t* or int32_t* per plan.out_type
// (bitpacked words or, kInt32, the accumulators).
// Work is split over `num_threads` (the calling thread plus a persistent pool;
// with a workspace, at most its slots); the bytes written do not depend on the
// thread count. Never throws: returns false only if scratch memory could not be
// allocated (output then undefined).
bool RunBConv(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
              const int32_t* input, void* output, BConvWorkspace* workspace = nullptr);

// kInt32 plans (bitlite's k-bit op): the accumulators of pixels [begin, end) (flat over
// the batch) on the calling thread, pixel begin + i at output row i; `workspace` (may be
// null) gives it a free slot, so threads may run ranges at once. False: not a kInt32
// plan, the reference kernel, no free slot, or out of memory.
bool RunBConvRange(const BConvPlan& plan, const BgemmKernel* kernel, const int32_t* input,
                   int32_t* output, long begin, long end, BConvWorkspace* workspace);

// How RunBConv splits a convolution: over `threads` threads (fewer than asked when
// the work is small), in pix_tasks x ch_tasks tasks of pix_chunk pixels (whole 4-pixel
// tiles) by ch_chunk output channels (a multiple of 32, or out_c), listed channel-major
// so that each thread's contiguous run of tasks (ParallelFor) reads the filters of its
// own channels only. Few pixels (a dense layer is one) are split over channels.
struct BConvSplit {
  int threads = 1;
  long pix_chunk = 0, pix_tasks = 1;
  int ch_chunk = 0, ch_tasks = 1;
};
BConvSplit SplitBConv(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads);

// For tests: the least work (binary MACs) per thread before a convolution is
// split (default, or any negative value: the kernel's min_macs_per_thread);
// 0 splits every convolution over all threads.
void SetMinMacsPerThread(double macs);

// For tests: the optimized path with the fused GEMM epilogue (bitpacked output
// computed inside the blocked kernel) disabled, everything else unchanged.
bool RunBConvUnfused(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
                     const int32_t* input, void* output);

}  // namespace bitlite

#endif  // BITLITE_BCONV_H_

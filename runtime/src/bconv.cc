#include "bconv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <atomic>
#include <new>


#include "flexbuffer.h"
#include "thread_pool.h"

namespace bitlite {
namespace {

constexpr int kBits = 32;
constexpr int64_t kMaxDim = 1 << 20;        // any single dimension
// Any tensor or buffer, in elements (smaller where the address space is).
constexpr int64_t kMaxElements = sizeof(void*) == 8 ? 1LL << 31 : 1LL << 26;
constexpr int kPixelBlock = 48;  // pixels per im2col block: a multiple of every tile height

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

inline int Popcount32(uint32_t v) { return __builtin_popcount(v); }

std::string Err(const std::string& s) { return "LceBconv2d: " + s; }

// The int32 clamp range of a fused activation (TFLite's CalculateActivationRange).
void ActivationRange(Activation act, int32_t* lo, int32_t* hi) {
  *lo = std::numeric_limits<int32_t>::lowest();
  *hi = std::numeric_limits<int32_t>::max();
  if (act == Activation::kRelu) *lo = 0;
  if (act == Activation::kRelu6) *lo = 0, *hi = 6;
  if (act == Activation::kReluN1To1) *lo = -1, *hi = 1;
}

inline int8_t SaturatingRound(float y) {
  const float r = std::round(y);
  if (!(r > -128.0f)) return -128;  // also NaN
  if (r > 127.0f) return 127;
  return static_cast<int8_t>(r);
}

// Writes one output pixel from its accumulators. `float_corr` (may be null)
// holds, per channel, the integer sum that LCE's zero-padding correction
// multiplies by -post_activation_multiplier.
void WritePixel(const BConvPlan& plan, const int32_t* accum, const int32_t* float_corr,
                void* out, long pixel) {
  const int oc = plan.shape.out_c;
  if (plan.out_type == OutputType::kInt32) {
    std::copy(accum, accum + oc, static_cast<int32_t*>(out) + pixel * oc);
    return;
  }
  if (plan.out_type == OutputType::kBitpacked) {
    const int words = CeilDiv(oc, kBits);
    int32_t* o = static_cast<int32_t*>(out) + pixel * words;
    for (int w = 0; w < words; ++w) {
      uint32_t bits = 0;
      const int end = std::min(oc, (w + 1) * kBits);
      for (int c = w * kBits; c < end; ++c)
        bits |= static_cast<uint32_t>(accum[c] > plan.thresholds[c]) << (c % kBits);
      o[w] = static_cast<int32_t>(bits);
    }
    return;
  }
  for (int c = 0; c < oc; ++c) {
    int32_t x = accum[c] * 2;
    x = std::max(std::min(x, plan.clamp_max), plan.clamp_min);
    float y = static_cast<float>(x) * plan.mul[c] + plan.bias[c];
    if (plan.out_type == OutputType::kFloat32) {
      if (float_corr != nullptr) y += plan.correction_mul[c] * static_cast<float>(float_corr[c]);
      static_cast<float*>(out)[pixel * oc + c] = y;
    } else {
      static_cast<int8_t*>(out)[pixel * oc + c] = SaturatingRound(y);
    }
  }
}

// ---------------------------------------------------------------- reference

// Direct convolution, one output value at a time (the oracle). `scratch` (may be
// null): 2 x out_c words allocated at prepare.
void RunReference(const BConvPlan& plan, const int32_t* input, void* output,
                  int32_t* scratch) {
  const BConvShape& s = plan.shape;
  const BConvOptions& o = plan.opt;
  const int og = s.out_c / s.groups;
  const int wpg = s.words_per_group;
  std::vector<int32_t> local(scratch ? 0 : 2 * size_t(s.out_c));
  int32_t* accum = scratch ? scratch : local.data();
  int32_t* corr = accum + s.out_c;
  for (int b = 0; b < s.batch; ++b)
    for (int oy = 0; oy < s.out_h; ++oy)
      for (int ox = 0; ox < s.out_w; ++ox) {
        bool any_outside = false;
        for (int c = 0; c < s.out_c; ++c) {
          const int g = c / og;
          int32_t acc = 0, cor = 0;
          for (int fy = 0; fy < s.fh; ++fy)
            for (int fx = 0; fx < s.fw; ++fx) {
              const int iy = oy * o.stride_height - s.pad_top + fy * o.dilation_height;
              const int ix = ox * o.stride_width - s.pad_left + fx * o.dilation_width;
              const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
              const uint32_t* f =
                  reinterpret_cast<const uint32_t*>(plan.raw_filters.data()) +
                  ((static_cast<long>(c) * s.fh + fy) * s.fw + fx) * wpg;
              if (!inside) any_outside = true;
              if (!inside && plan.zero_pad == ZeroPadMode::kIntegerAccum) {
                acc += s.channels_per_group / 2;
                continue;
              }
              int tap_bits = 0;
              for (int w = 0; w < wpg; ++w) {
                uint32_t x = 0;  // outside: +1 everywhere
                if (inside)
                  x = static_cast<uint32_t>(
                      input[((static_cast<long>(b) * s.in_h + iy) * s.in_w + ix) * s.in_words +
                            g * wpg + w]);
                acc += Popcount32(x ^ f[w]);
                tap_bits += Popcount32(f[w]);
              }
              if (!inside) cor += s.channels_per_group - 2 * tap_bits;
            }
          accum[c] = acc;
          corr[c] = cor;
        }
        const bool use_corr = any_outside && plan.zero_pad == ZeroPadMode::kFloatCorrection;
        WritePixel(plan, accum, use_corr ? corr : nullptr, output,
                   (static_cast<long>(b) * s.out_h + oy) * s.out_w + ox);
      }
}

// ---------------------------------------------------------------- optimized

std::atomic<double> g_min_macs_per_thread{-1};  // < 0: the kernel's own threshold

struct Scratch {  // per thread, reused by every convolution the thread runs
  AlignedWords patches;        // kPixelBlock x kwords
  AlignedWords interleaved;    // the same, InterleavePatches4 (kernels that read that)
  std::vector<int32_t> accum;  // kPixelBlock x out_c
  std::vector<int32_t> corr;   // out_c
  std::vector<int> outside;    // taps outside the image, for one pixel
};

Scratch& ThreadScratch() {
  thread_local Scratch s;
  return s;
}

// Grows `sc` to what RunRange needs for `plan` (a no-op when reserved at prepare).
void SizeScratch(const BConvPlan& plan, const BgemmKernel* kernel, Scratch& sc) {
  const BConvShape& s = plan.shape;
  const size_t patch_words = static_cast<size_t>(kPixelBlock) * plan.kwords;
  if (sc.patches.size() < patch_words) sc.patches.assign_zero(patch_words);
  if (kernel != nullptr && kernel->interleave4 && sc.interleaved.size() < patch_words)
    sc.interleaved.assign_zero(patch_words);  // kPixelBlock is a multiple of 4
  // accum: kPixelBlock x out_c, and 2 x out_c for the reference convolution
  const size_t accum_words = static_cast<size_t>(std::max(kPixelBlock, 2)) * s.out_c;
  if (sc.accum.size() < accum_words) sc.accum.resize(accum_words);
  if (sc.corr.size() < static_cast<size_t>(s.out_c)) sc.corr.resize(s.out_c);
  sc.outside.reserve(s.fh * s.fw);
}

}  // namespace

// One scratch slot per thread; a task takes a free slot for its duration (at most as
// many tasks run at once as threads, so one is always free).
struct BConvWorkspace::Impl {
  std::vector<Scratch> slots;
  std::atomic<uint64_t> busy{0};  // bit i: slot i in use

  int Acquire() {
    uint64_t m = busy.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t free_bits = ~m & (slots.size() >= 64 ? ~0ull : (1ull << slots.size()) - 1);
      if (free_bits == 0) return -1;
      const int i = __builtin_ctzll(free_bits);
      if (busy.compare_exchange_weak(m, m | (1ull << i), std::memory_order_acquire)) return i;
    }
  }
  void Release(int i) { busy.fetch_and(~(1ull << i), std::memory_order_release); }
};

BConvWorkspace::BConvWorkspace() = default;
BConvWorkspace::~BConvWorkspace() = default;

bool BConvWorkspace::Reserve(const BConvPlan& plan, const BgemmKernel* kernel, int threads) {
  threads = std::max(1, std::min(threads, 64));
  try {
    if (impl == nullptr) impl.reset(new Impl);
    impl->slots.clear();
    impl->slots.resize(threads);
    for (Scratch& sc : impl->slots) SizeScratch(plan, kernel, sc);
  } catch (...) {  // bad_alloc
    impl.reset();
    return false;
  }
  // Threads that cannot start leave the convolution to fewer (same bytes).
  if (kernel != nullptr && kernel->run != nullptr) ReserveThreads(threads);
  return true;
}

namespace {

struct ConvJob {  // one RunBConv call, split into tasks
  BConvWorkspace::Impl* workspace;  // null: per-thread scratch
  const BConvPlan* plan;
  const BgemmKernel* kernel;
  const int32_t* input;
  void* output;
  bool fuse;         // bitpacked / float output inside the blocked kernel where exact
  long out_origin = 0;  // kInt32: the pixel at the output's first row (RunBConvRange)
  long pix_chunk;    // pixels per task
  int ch_chunk;      // output channels per task (multiple of 32, or out_c)
  int ch_tasks;
  long pix_tasks = 1;
  std::atomic<bool> failed{false};
};

// im2col of one pixel and group: taps * wpg words, then zeros up to kwords.
// Returns true when some tap lies outside the image.
bool Im2colPixel(const BConvPlan& plan, const int32_t* input, long p, int g, uint32_t* row) {
  const BConvShape& s = plan.shape;
  const BConvOptions& o = plan.opt;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const int b = static_cast<int>(p / per_image);
  const int oy = static_cast<int>((p % per_image) / s.out_w);
  const int ox = static_cast<int>(p % s.out_w);
  const int wpg = s.words_per_group;
  const size_t tap_bytes = sizeof(uint32_t) * wpg;
  bool outside = false;
  for (int fy = 0; fy < s.fh; ++fy) {
    const int iy = oy * o.stride_height - s.pad_top + fy * o.dilation_height;
    uint32_t* dst = row + fy * s.fw * wpg;
    if (iy < 0 || iy >= s.in_h) {
      std::memset(dst, 0, tap_bytes * s.fw);
      outside = true;
      continue;
    }
    const int32_t* line = input + (static_cast<long>(b) * s.in_h + iy) * s.in_w * s.in_words +
                          g * wpg;
    const int ix0 = ox * o.stride_width - s.pad_left;
    const int ix_last = ix0 + (s.fw - 1) * o.dilation_width;
    if (s.groups == 1 && o.dilation_width == 1 && ix0 >= 0 && ix_last < s.in_w) {
      // The row's taps are adjacent pixels: one copy.
      std::memcpy(dst, line + static_cast<long>(ix0) * s.in_words, tap_bytes * s.fw);
      continue;
    }
    for (int fx = 0; fx < s.fw; ++fx) {
      const int ix = ix0 + fx * o.dilation_width;
      if (ix >= 0 && ix < s.in_w) {
        std::memcpy(dst + fx * wpg, line + static_cast<long>(ix) * s.in_words, tap_bytes);
      } else {
        std::memset(dst + fx * wpg, 0, tap_bytes);
        outside = true;
      }
    }
  }
  const int used = s.fh * s.fw * wpg;
  if (used < plan.kwords) std::memset(row + used, 0, sizeof(uint32_t) * (plan.kwords - used));
  return outside;
}

// Im2colPixel straight into InterleavePatches4's layout, for kernels that read
// it, when every tap is whole 128-bit chunks (words per group % 4 == 0, one
// group): chunk c of the pixel's row goes to dst + 16 * c. Saves the second copy.
// Not inlined into Im2colBlockChunks (border pixels only): its registers.
__attribute__((noinline)) bool Im2colPixelChunks(const BConvPlan& plan, const int32_t* input, long p, uint32_t* dst) {
  // The shape in locals: the stores through dst could alias the plan, so the
  // compiler would reload every field for every chunk otherwise.
  const BConvShape s = plan.shape;
  const BConvOptions& o = plan.opt;
  const int stride_h = o.stride_height, dil_h = o.dilation_height, dil_w = o.dilation_width;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const int b = static_cast<int>(p / per_image);
  const int oy = static_cast<int>((p % per_image) / s.out_w);
  const int ox = static_cast<int>(p % s.out_w);
  const int chunks = s.words_per_group / kKWordAlign;  // per tap
  const int ix0 = ox * o.stride_width - s.pad_left;
  const long row_words = static_cast<long>(s.in_w) * s.in_words;
  const int32_t* image = input + static_cast<long>(b) * s.in_h * row_words;
  // Dilation 1 across: a row's taps [lo, hi) are adjacent input pixels inside
  // the image, (hi - lo) * chunks consecutive chunks of the input (one group:
  // in_words == words_per_group); the taps before and after are zeros.
  const int lo = std::max(0, -ix0), hi = std::min(s.fw, s.in_w - ix0);
  bool outside = false;
  for (int fy = 0; fy < s.fh; ++fy) {
    const int iy = oy * stride_h - s.pad_top + fy * dil_h;
    const bool row_in = iy >= 0 && iy < s.in_h;
    const int32_t* line = row_in ? image + iy * row_words : nullptr;
    if (dil_w == 1) {
      const int a = row_in ? std::min(lo, s.fw) : s.fw;  // taps [a, e) copied
      const int e = row_in ? std::max(hi, a) : s.fw;
      outside |= a > 0 || e < s.fw;
      for (int c = 0; c < a * chunks; ++c, dst += 4 * kKWordAlign)
        std::memset(dst, 0, sizeof(uint32_t) * kKWordAlign);
      const int32_t* src = e > a ? line + static_cast<long>(ix0 + a) * s.in_words : nullptr;
      for (int c = 0; c < (e - a) * chunks; ++c, dst += 4 * kKWordAlign, src += kKWordAlign)
        std::memcpy(dst, src, sizeof(uint32_t) * kKWordAlign);
      for (int c = 0; c < (s.fw - e) * chunks; ++c, dst += 4 * kKWordAlign)
        std::memset(dst, 0, sizeof(uint32_t) * kKWordAlign);
      continue;
    }
    for (int fx = 0; fx < s.fw; ++fx) {
      const int ix = ix0 + fx * dil_w;
      const bool in = row_in && ix >= 0 && ix < s.in_w;
      outside |= !in;
      const int32_t* src = in ? line + static_cast<long>(ix) * s.in_words : nullptr;
      for (int c = 0; c < chunks; ++c, dst += 4 * kKWordAlign) {
        if (in)
          std::memcpy(dst, src + kKWordAlign * c, sizeof(uint32_t) * kKWordAlign);
        else
          std::memset(dst, 0, sizeof(uint32_t) * kKWordAlign);
      }
    }
  }
  return outside;
}

// Im2colPixelChunks for pixels [p0, p0 + n) into the interleaved block at
// `block` (pixel i at block + (i / 4) * 4 * kwords + (i % 4) * 4): the pixel
// coordinates advance by one instead of being divided out per pixel, and a
// pixel whose taps all lie inside (dilation 1 across) copies each filter row's
// fw * chunks adjacent chunks in one tight loop; border pixels go through
// Im2colPixelChunks. Returns true when some tap lies outside the image. Not
// inlined: inside RunTask its loops kept the locals on the stack.
__attribute__((noinline)) bool Im2colBlockChunks(const BConvPlan& plan, const int32_t* input, long p0, int n,
                       uint32_t* block) {
  const BConvShape s = plan.shape;  // locals: the stores through block could alias the plan
  const BConvOptions& o = plan.opt;
  const int stride_h = o.stride_height, stride_w = o.stride_width, dil_h = o.dilation_height;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const long row_words = static_cast<long>(s.in_w) * s.in_words;
  const int row_chunks = s.fw * (s.words_per_group / kKWordAlign);
  const long kw = plan.kwords;
  const bool dense_rows = o.dilation_width == 1;
  int b = static_cast<int>(p0 / per_image);
  int oy = static_cast<int>((p0 % per_image) / s.out_w);
  int ox = static_cast<int>(p0 % s.out_w);
  const long line_step = static_cast<long>(dil_h) * row_words;
  const long pixel_step = static_cast<long>(stride_w) * s.in_words;  // next pixel's taps
  bool outside = false;
  for (int i = 0; i < n;) {
    uint32_t* dst = block + (i / 4) * 4 * kw + (i % 4) * kKWordAlign;
    const int iy0 = oy * stride_h - s.pad_top, ix0 = ox * stride_w - s.pad_left;
    const bool rows_in = dense_rows && iy0 >= 0 && iy0 + (s.fh - 1) * dil_h < s.in_h;
    const int32_t* src0 = rows_in && ix0 >= 0 ? input + (static_cast<long>(b) * s.in_h + iy0) *
                                                          row_words + static_cast<long>(ix0) * s.in_words
                                              : nullptr;  // no pointer outside the input
    int step = 1;
    if (rows_in && i % 4 == 0 && i + 4 <= n && ox + 4 <= s.out_w && ix0 >= 0 &&
        ix0 + 3 * stride_w + s.fw <= s.in_w) {
      // A whole group of 4 inside pixels of one output row: chunk c of the 4
      // is one 64-byte run of the block, from 4 sources pixel_step apart.
      for (int fy = 0; fy < s.fh; ++fy, src0 += line_step) {
        const int32_t* src = src0;
        for (int c = 0; c < row_chunks; ++c, dst += 4 * kKWordAlign, src += kKWordAlign)
          for (int q = 0; q < 4; ++q)
            std::memcpy(dst + q * kKWordAlign, src + q * pixel_step,
                        sizeof(uint32_t) * kKWordAlign);
      }
      step = 4;
    } else if (rows_in && ix0 >= 0 && ix0 + s.fw <= s.in_w) {
      for (int fy = 0; fy < s.fh; ++fy, src0 += line_step) {
        const int32_t* src = src0;
        for (int c = 0; c < row_chunks; ++c, dst += 4 * kKWordAlign, src += kKWordAlign)
          std::memcpy(dst, src, sizeof(uint32_t) * kKWordAlign);
      }
    } else {
      outside |= Im2colPixelChunks(plan, input, p0 + i, dst);
    }
    i += step;
    if ((ox += step) == s.out_w) {
      ox = 0;
      if (++oy == s.out_h) oy = 0, ++b;
    }
  }
  return outside;
}

// The GEMM of one pixel block and group over output channels [c0, c1) (c0 is a
// multiple of 32 unless the convolution is grouped, when [c0, c1) is the group).
void Gemm(const BConvPlan& plan, const BgemmKernel* kernel, const uint32_t* patches, int n,
          int g, int c0, int c1, int32_t* accum, const BlockedEpilogue* fused) {
  const int og = plan.shape.out_c / plan.shape.groups;
  const int first = c0 - g * og;  // first channel within the group
  if (kernel->run_blocked != nullptr) {
    // first % 16 == 0. Prepare keeps only the layout this kernel reads (the other one is
    // empty: no pointer arithmetic on it).
    const size_t offset = g * plan.blocked_group_words + static_cast<size_t>(first) * plan.kwords;
    const uint32_t* f =
#if defined(__x86_64__) || defined(__i386__)
        kernel->nibbles ? plan.nibble_filters.data() + 2 * offset :  // twice the words
#endif
                        plan.blocked_filters.data() + offset;
    kernel->run_blocked(patches, n, f, c1 - c0, plan.kwords, accum + c0, plan.shape.out_c,
                        fused);
    return;
  }
  const uint32_t* f = plan.packed_filters.data() + static_cast<size_t>(c0) * plan.kwords;
  kernel->run(patches, n, f, c1 - c0, plan.kwords, accum + c0, plan.shape.out_c);
}

// Zero-padding semantics for pixel p's accumulators over channels [c0, c1):
// returns the float correction row (or null) as WritePixel expects it.
const int32_t* ZeroPadFix(const BConvPlan& plan, long p, int c0, int c1, int32_t* acc,
                          Scratch& sc) {
  const BConvShape& s = plan.shape;
  const BConvOptions& o = plan.opt;
  const int taps = s.fh * s.fw;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const int oy = static_cast<int>((p % per_image) / s.out_w);
  const int ox = static_cast<int>(p % s.out_w);
  sc.outside.clear();
  for (int fy = 0; fy < s.fh; ++fy)
    for (int fx = 0; fx < s.fw; ++fx) {
      const int iy = oy * o.stride_height - s.pad_top + fy * o.dilation_height;
      const int ix = ox * o.stride_width - s.pad_left + fx * o.dilation_width;
      if (!(iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w)) sc.outside.push_back(fy * s.fw + fx);
    }
  if (sc.outside.empty()) return nullptr;
  // The GEMM read outside taps as +1 (bit 0): it counted the tap's set filter
  // bits. Replace that by the zero-padding semantics.
  const int32_t n_out = static_cast<int32_t>(sc.outside.size());
  for (int c = c0; c < c1; ++c) {
    const int32_t* tp = plan.tap_popcount.data() + static_cast<size_t>(c) * taps;
    int32_t bits = 0;
    for (int t : sc.outside) bits += tp[t];
    if (plan.zero_pad == ZeroPadMode::kIntegerAccum)
      acc[c] += n_out * (s.channels_per_group / 2) - bits;
    else
      sc.corr[c] = n_out * s.channels_per_group - 2 * bits;
  }
  return plan.zero_pad == ZeroPadMode::kFloatCorrection ? sc.corr.data() : nullptr;
}

// Output transform of one pixel over channels [c0, c1) (c0 % 32 == 0 for
// bitpacked output), written as plain loops the compiler vectorizes.
void TransformPixel(const BConvPlan& plan, const int32_t* acc, const int32_t* corr, void* out,
                    long pixel, int c0, int c1) {
  const int oc = plan.shape.out_c;
  if (plan.out_type == OutputType::kBitpacked) {
    const int words = CeilDiv(oc, kBits);
    int32_t* o = static_cast<int32_t*>(out) + pixel * words;
    for (int w = c0 / kBits; w < CeilDiv(c1, kBits); ++w) {
      uint32_t bits = 0;
      const int end = std::min(c1, (w + 1) * kBits);
      for (int c = w * kBits; c < end; ++c)
        bits |= static_cast<uint32_t>(acc[c] > plan.thresholds[c]) << (c % kBits);
      o[w] = static_cast<int32_t>(bits);
    }
    return;
  }
  const int32_t lo = plan.clamp_min, hi = plan.clamp_max;
  const float* mul = plan.mul.data();
  const float* bias = plan.bias.data();
  if (plan.out_type == OutputType::kFloat32) {
    float* y = static_cast<float*>(out) + pixel * oc;
    for (int c = c0; c < c1; ++c) {
      const int32_t x = std::max(std::min(acc[c] * 2, hi), lo);
      y[c] = static_cast<float>(x) * mul[c] + bias[c];
    }
    if (corr != nullptr)
      for (int c = c0; c < c1; ++c) y[c] += plan.correction_mul[c] * static_cast<float>(corr[c]);
    return;
  }
  int8_t* q = static_cast<int8_t*>(out) + pixel * oc;
  for (int c = c0; c < c1; ++c) {
    const int32_t x = std::max(std::min(acc[c] * 2, hi), lo);
    q[c] = SaturatingRound(static_cast<float>(x) * mul[c] + bias[c]);
  }
}

// im2col + binary GEMM + output transform over pixels [begin, end) (flattened
// over the batch) and output channels [c0, c1).
void RunRange(const ConvJob& job, Scratch& sc, long begin, long end, int c0, int c1) {
  const BConvPlan& plan = *job.plan;
  const BConvShape& s = plan.shape;
  const int og = s.out_c / s.groups;
  const int kw = plan.kwords;
  SizeScratch(plan, job.kernel, sc);
  const int words = CeilDiv(s.out_c, kBits);
  // Patches written interleaved in place (see Im2colPixelChunks).
  const bool direct = job.kernel->interleave4 && s.groups == 1 &&
                      s.words_per_group % kKWordAlign == 0;
  for (long p0 = begin; p0 < end; p0 += kPixelBlock) {
    const int n = static_cast<int>(std::min<long>(kPixelBlock, end - p0));
    bool border = false;
    bool fused = false;
    for (int g = 0; g < s.groups; ++g) {
      if (direct) {
        border |= Im2colBlockChunks(plan, job.input, p0, n, sc.interleaved.data());
      } else {
        for (int i = 0; i < n; ++i)
          border |= Im2colPixel(plan, job.input, p0 + i, g,
                                sc.patches.data() + static_cast<size_t>(i) * kw);
      }
      const int lo = s.groups == 1 ? c0 : g * og, hi = s.groups == 1 ? c1 : (g + 1) * og;
      BlockedEpilogue ep;
      // Exact to fuse unless outside taps change the accumulators themselves.
      fused = job.fuse && (!border || plan.zero_pad != ZeroPadMode::kIntegerAccum);
      if (fused && plan.out_type == OutputType::kBitpacked) {
        ep.thresholds = plan.thresholds.data() + c0;
        ep.bits = reinterpret_cast<uint16_t*>(static_cast<int32_t*>(job.output) + p0 * words) +
                  c0 / 16;
        ep.bits_stride = 2L * words;
      } else if (fused) {
        ep.mul = plan.mul.data() + c0;
        ep.bias = plan.bias.data() + c0;
        ep.clamp_lo = plan.clamp_min;
        ep.clamp_hi = plan.clamp_max;
        ep.out = static_cast<float*>(job.output) + p0 * s.out_c + c0;
        ep.out_stride = s.out_c;
      }
      const uint32_t* patches = direct ? sc.interleaved.data() : sc.patches.data();
      if (job.kernel->interleave4 && !direct) {
        InterleavePatches4(sc.patches.data(), n, kw, sc.interleaved.data());
        patches = sc.interleaved.data();
      }
      // kInt32: the GEMM stores the block's accumulators in the output itself.
      int32_t* accum = plan.out_type == OutputType::kInt32
                           ? static_cast<int32_t*>(job.output) + (p0 - job.out_origin) * s.out_c
                           : sc.accum.data();
      Gemm(plan, job.kernel, patches, n, g, lo, hi, accum, fused ? &ep : nullptr);
    }
    if (plan.out_type == OutputType::kInt32) continue;
    if (fused && plan.out_type == OutputType::kBitpacked) {
      // A last word half the kernel did not cover (out_c % 32 in 1..16) is zero.
      if (c1 == s.out_c && CeilDiv(s.out_c, 16) < 2 * words)
        for (int i = 0; i < n; ++i)
          reinterpret_cast<uint16_t*>(static_cast<int32_t*>(job.output) + (p0 + i) * words)
              [2 * words - 1] = 0;
      continue;
    }
    if (fused) {
      // LCE's float zero-padding correction is added after the transform, as
      // the reference does (same two roundings).
      if (border && plan.zero_pad == ZeroPadMode::kFloatCorrection)
        for (int i = 0; i < n; ++i) {
          const int32_t* corr = ZeroPadFix(plan, p0 + i, c0, c1, nullptr, sc);
          if (corr == nullptr) continue;
          float* y = static_cast<float*>(job.output) + (p0 + i) * s.out_c;
          for (int c = c0; c < c1; ++c)
            y[c] += plan.correction_mul[c] * static_cast<float>(corr[c]);
        }
      continue;
    }
    for (int i = 0; i < n; ++i) {
      int32_t* acc = sc.accum.data() + static_cast<size_t>(i) * s.out_c;
      const int32_t* corr = nullptr;
      if (plan.zero_pad != ZeroPadMode::kNone && border)
        corr = ZeroPadFix(plan, p0 + i, c0, c1, acc, sc);
      TransformPixel(plan, acc, corr, job.output, p0 + i, c0, c1);
    }
  }
}

// RunRange on a scratch of the job's workspace (or this thread's own); false when no
// slot is free (more callers than slots: never happens) or scratch cannot be allocated.
bool RunRangeWithScratch(const ConvJob& job, long begin, long end, int c0, int c1) {
  const int slot = job.workspace ? job.workspace->Acquire() : -1;
  if (job.workspace != nullptr && slot < 0) return false;
  bool ok = true;
  try {
    RunRange(job, slot >= 0 ? job.workspace->slots[slot] : ThreadScratch(), begin, end, c0, c1);
  } catch (...) {  // bad_alloc of scratch: never unwind into the pool or C frames
    ok = false;
  }
  if (slot >= 0) job.workspace->Release(slot);
  return ok;
}

void RunTask(void* ctx, int task) {
  ConvJob& job = *static_cast<ConvJob*>(ctx);
  const BConvShape& s = job.plan->shape;
  const long pixels = static_cast<long>(s.batch) * s.out_h * s.out_w;
  // Channel-major: the pool gives each thread a contiguous run of tasks, so a thread
  // reads the filters of its channels only (a small image's filters dominate its data).
  const long begin = (task % job.pix_tasks) * job.pix_chunk;
  const int c0 = static_cast<int>(task / job.pix_tasks) * job.ch_chunk;
  if (!RunRangeWithScratch(job, begin, std::min(pixels, begin + job.pix_chunk), c0,
                           std::min(s.out_c, c0 + job.ch_chunk)))
    job.failed.store(true);
}

// The workspace's state if Reserve filled it (out of memory: not used).
BConvWorkspace::Impl* Usable(BConvWorkspace* workspace) {
  return workspace && workspace->impl && !workspace->impl->slots.empty() ? workspace->impl.get()
                                                                         : nullptr;
}

bool RunOptimized(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
                  const int32_t* input, void* output, bool allow_fuse,
                  BConvWorkspace::Impl* workspace) {
  const BConvShape& s = plan.shape;
  ConvJob job;
  job.workspace = workspace;
  if (workspace != nullptr) num_threads = std::min<int>(num_threads, workspace->slots.size());
  job.plan = &plan;
  job.kernel = kernel;
  job.input = input;
  job.output = output;
  job.fuse = allow_fuse && kernel->run_blocked != nullptr && kernel->fuses && s.groups == 1 &&
             (plan.out_type == OutputType::kFloat32 || plan.out_type == OutputType::kBitpacked);
  const BConvSplit split = SplitBConv(plan, kernel, num_threads);
  job.pix_chunk = split.pix_chunk;
  job.pix_tasks = split.pix_tasks;
  job.ch_chunk = split.ch_chunk;
  job.ch_tasks = split.ch_tasks;
  ParallelFor(split.threads, static_cast<int>(split.pix_tasks * split.ch_tasks), RunTask, &job);
  return !job.failed.load();
}

}  // namespace

std::string ParseBConvOptions(const uint8_t* buffer, size_t length, BConvOptions* out) {
  static const std::vector<std::string> keys = {
      "channels_in",  "dilation_height_factor", "dilation_width_factor",
      "fused_activation_function", "pad_values", "padding", "stride_height", "stride_width"};
  std::vector<int32_t> v;
  std::string error;
  if (!ReadInt32Options(buffer, length, keys, &v, &error)) return Err(error);
  BConvOptions o;
  o.channels_in = v[0];
  o.dilation_height = v[1];
  o.dilation_width = v[2];
  o.activation = v[3];
  o.pad_values = v[4];
  o.padding = v[5];
  o.stride_height = v[6];
  o.stride_width = v[7];
  if (o.channels_in < 1 || o.channels_in > kMaxDim) return Err("channels_in out of range");
  if (o.stride_height < 1 || o.stride_width < 1 || o.stride_height > kMaxDim ||
      o.stride_width > kMaxDim)
    return Err("strides must be >= 1");
  if (o.dilation_height < 1 || o.dilation_width < 1 || o.dilation_height > kMaxDim ||
      o.dilation_width > kMaxDim)
    return Err("dilation factors must be >= 1");
  if (o.padding != 0 && o.padding != 1) return Err("padding must be SAME (0) or VALID (1)");
  if (o.pad_values != 0 && o.pad_values != 1) return Err("pad_values must be 0 or 1");
  if (o.activation < 0 || o.activation > 3)
    return Err("fused activation function " + std::to_string(o.activation) +
               " is not supported (NONE, RELU, RELU_N1_TO_1, RELU6 are)");
  *out = o;
  return "";
}

std::string PlanBConv(const BConvOptions& opt, const BConvTensors& t, BConvPlan* plan) {
  BConvShape s;
  for (int i = 0; i < 4; ++i)
    if (t.in_dims[i] < 1 || t.in_dims[i] > kMaxDim || t.filter_dims[i] < 1 ||
        t.filter_dims[i] > kMaxDim)
      return Err("input and filter dimensions must be in [1, 2^20]");
  s.batch = t.in_dims[0];
  s.in_h = t.in_dims[1];
  s.in_w = t.in_dims[2];
  s.in_words = t.in_dims[3];
  s.out_c = t.filter_dims[0];
  s.fh = t.filter_dims[1];
  s.fw = t.filter_dims[2];
  s.words_per_group = t.filter_dims[3];
  if (s.in_words != CeilDiv(opt.channels_in, kBits))
    return Err("input has " + std::to_string(s.in_words) + " packed words but channels_in=" +
               std::to_string(opt.channels_in) + " needs " +
               std::to_string(CeilDiv(opt.channels_in, kBits)));
  if (s.words_per_group == s.in_words) {
    s.groups = 1;
  } else {
    if (s.in_words % s.words_per_group != 0)
      return Err("filter depth does not divide the packed input depth");
    s.groups = s.in_words / s.words_per_group;
    if (opt.channels_in % s.groups != 0 || (opt.channels_in / s.groups) % kBits != 0)
      return Err("grouped convolution needs a multiple of 32 channels per group");
    if (s.out_c % s.groups != 0) return Err("output channels must be divisible by groups");
  }
  s.channels_per_group = opt.channels_in / s.groups;

  const int64_t eff_h = int64_t(s.fh - 1) * opt.dilation_height + 1;
  const int64_t eff_w = int64_t(s.fw - 1) * opt.dilation_width + 1;
  if (eff_h > kMaxDim || eff_w > kMaxDim) return Err("dilated filter too large");
  if (opt.padding == 0) {  // SAME
    s.out_h = CeilDiv(s.in_h, opt.stride_height);
    s.out_w = CeilDiv(s.in_w, opt.stride_width);
  } else {
    if (eff_h > s.in_h || eff_w > s.in_w)
      return Err("VALID padding with a (dilated) filter larger than the input");
    s.out_h = static_cast<int>((s.in_h - eff_h) / opt.stride_height + 1);
    s.out_w = static_cast<int>((s.in_w - eff_w) / opt.stride_width + 1);
  }
  s.pad_top = static_cast<int>(
      std::max<int64_t>(0, (int64_t(s.out_h - 1) * opt.stride_height + eff_h - s.in_h) / 2));
  s.pad_left = static_cast<int>(
      std::max<int64_t>(0, (int64_t(s.out_w - 1) * opt.stride_width + eff_w - s.in_w) / 2));

  const int64_t taps = int64_t(s.fh) * s.fw;
  const int64_t row_words = taps * s.words_per_group;
  const int64_t kwords = (row_words + kKWordAlign - 1) / kKWordAlign * kKWordAlign;
  const int64_t depth = taps * s.channels_per_group;  // K: max accumulator value
  const int64_t in_elems = int64_t(s.batch) * s.in_h * s.in_w * s.in_words;
  const int64_t out_elems = int64_t(s.batch) * s.out_h * s.out_w * s.out_c;
  if (kwords * kPixelBlock > kMaxElements || kwords * s.out_c > kMaxElements ||
      depth > (1 << 28) || in_elems > kMaxElements || out_elems > kMaxElements ||
      taps * s.out_c > kMaxElements)
    return Err("tensor sizes exceed the supported range");

  plan->opt = opt;
  plan->out_type = t.out_type;
  plan->zero_pad = ZeroPadMode::kNone;
  const Activation act = static_cast<Activation>(opt.activation);
  if (t.out_type == OutputType::kInt32 &&
      ((opt.padding == 0 && opt.pad_values == 0) || act != Activation::kNone))
    return Err("raw int32 counts need pad_values=1 (or VALID) and no activation");
  if (opt.padding == 0 && opt.pad_values == 0) {
    // Match the LCE kernel that runs such an op: its default kernel corrects float
    // output without activation in float; grouped convolutions only run on its
    // reference kernel, which counts channels/2 per outside tap.
    if (t.out_type == OutputType::kFloat32 && act == Activation::kNone && s.groups == 1)
      plan->zero_pad = ZeroPadMode::kFloatCorrection;
    else if (s.channels_per_group % 2 == 0)
      plan->zero_pad = ZeroPadMode::kIntegerAccum;
    else
      return Err("SAME padding with pad_values=0 and int8/bitpacked output or a fused "
                 "activation needs an even number of input channels per group (got " +
                 std::to_string(s.channels_per_group) + ")");
  }

  if (t.out_type == OutputType::kInt32) {
    // the caller applies everything (the planner checked the options above)
  } else if (t.out_type == OutputType::kBitpacked) {
    if (t.thresholds == nullptr) return Err("bitpacked output needs the thresholds input");
    plan->thresholds.assign(t.thresholds, t.thresholds + s.out_c);
  } else {
    if (t.post_mul == nullptr || t.post_bias == nullptr)
      return Err("float/int8 output needs post_activation_multiplier and _bias inputs");
    double scale = 1.0, zero_point = 0.0;
    if (t.out_type == OutputType::kInt8) {
      if (!(t.out_scale > 0.0f) || !std::isfinite(t.out_scale))
        return Err("int8 output needs a positive, finite quantization scale");
      scale = t.out_scale;
      zero_point = t.out_zero_point;
    }
    plan->mul.resize(s.out_c);
    plan->bias.resize(s.out_c);
    plan->correction_mul.resize(s.out_c);
    for (int c = 0; c < s.out_c; ++c) {  // in double, then float, as LCE does
      const double pm = t.post_mul[c], pb = t.post_bias[c];
      plan->mul[c] = static_cast<float>(-1 * pm / scale);
      plan->bias[c] = static_cast<float>((pb + static_cast<double>(depth) * pm) / scale +
                                         zero_point);
      plan->correction_mul[c] = -1.0f * t.post_mul[c];
    }
    int32_t lo, hi;
    ActivationRange(act, &lo, &hi);
    lo = static_cast<int32_t>(std::max<int64_t>(lo, -depth));
    hi = static_cast<int32_t>(std::min<int64_t>(hi, depth));
    plan->clamp_min = static_cast<int32_t>(-int64_t(hi) + depth);
    plan->clamp_max = static_cast<int32_t>(-int64_t(lo) + depth);
  }

  plan->kwords = static_cast<int>(kwords);
  const size_t filter_words = static_cast<size_t>(s.out_c) * row_words;
  plan->raw_filters.assign(reinterpret_cast<const uint32_t*>(t.filter),
                           reinterpret_cast<const uint32_t*>(t.filter) + filter_words);
  plan->packed_filters.assign(static_cast<size_t>(s.out_c) * kwords, 0);
  plan->tap_popcount.assign(static_cast<size_t>(s.out_c) * taps, 0);
  for (int c = 0; c < s.out_c; ++c)
    for (int64_t k = 0; k < row_words; ++k) {
      const uint32_t w = plan->raw_filters[c * row_words + k];
      plan->packed_filters[c * kwords + k] = w;
      plan->tap_popcount[c * taps + k / s.words_per_group] += Popcount32(w);
    }
  const int og = s.out_c / s.groups;
  plan->blocked_group_words = BlockedFilterWords(og, static_cast<int>(kwords));
  plan->blocked_filters.assign_zero(plan->blocked_group_words * s.groups);
  for (int g = 0; g < s.groups; ++g)
    PackFiltersBlocked16(plan->packed_filters.data() + static_cast<size_t>(g) * og * kwords, og,
                         static_cast<int>(kwords),
                         plan->blocked_filters.data() + g * plan->blocked_group_words);
#if defined(__x86_64__) || defined(__i386__)
  plan->nibble_filters.assign_zero(2 * plan->blocked_group_words * s.groups);
  for (int g = 0; g < s.groups; ++g)
    PackFiltersNibbles16(plan->packed_filters.data() + static_cast<size_t>(g) * og * kwords, og,
                         static_cast<int>(kwords),
                         plan->nibble_filters.data() + 2 * g * plan->blocked_group_words);
#endif
  plan->shape = s;
  return "";
}

void BConvOutputDims(const BConvPlan& plan, int dims[4]) {
  dims[0] = plan.shape.batch;
  dims[1] = plan.shape.out_h;
  dims[2] = plan.shape.out_w;
  dims[3] = plan.out_type == OutputType::kBitpacked ? CeilDiv(plan.shape.out_c, kBits)
                                                    : plan.shape.out_c;
}

void KeepFiltersFor(const BgemmKernel* kernel, BConvPlan* plan) {
#if defined(__x86_64__) || defined(__i386__)
  if (kernel != nullptr && kernel->run_blocked != nullptr && kernel->nibbles)
    plan->blocked_filters.assign_zero(0);
  else
    plan->nibble_filters.assign_zero(0);
#else
  (void)kernel;
  (void)plan;
#endif
}

BConvSplit SplitBConv(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads) {
  const BConvShape& s = plan.shape;
  const long pixels = static_cast<long>(s.batch) * s.out_h * s.out_w;
  // Threads only pay off past ~20 us of work each (a pool wake-up costs
  // microseconds); tasks are several per thread so a slow core evens out. The filters
  // stream through once per tile of up to 4 pixels, so a 1-pixel (dense) layer costs
  // as much as 4 pixels: count whole tiles (VGG-8's 8192->1024 dense takes ~35 us on
  // AVX-512, 4x what its MACs say). Rounded to the nearest count: a thread's share of
  // the work is then at least 3/4 of the threshold.
  const long tiled = (pixels + 3) / 4 * 4;
  const double macs = static_cast<double>(tiled) * s.out_c * plan.kwords * kBits;
  BConvSplit split;
  split.pix_chunk = pixels;
  split.ch_chunk = s.out_c;
  if (kernel == nullptr || kernel->run == nullptr) return split;  // the oracle: serial
  split.threads = std::max(1, num_threads);
  const double set = g_min_macs_per_thread.load(std::memory_order_relaxed);
  const double min_macs = set >= 0 ? set : kernel->min_macs_per_thread;
  if (min_macs > 0)
    split.threads = static_cast<int>(
        std::max(1.0, std::min<double>(split.threads, std::floor(macs / min_macs + 0.5))));
  if (split.threads == 1) return split;
  const long target = 4L * split.threads;
  const long chunk = std::max<long>(12, (pixels + target - 1) / target);
  split.pix_chunk = (chunk + 3) / 4 * 4;  // whole 4-pixel tiles
  split.pix_tasks = (pixels + split.pix_chunk - 1) / split.pix_chunk;
  if (split.pix_tasks < target && s.groups == 1) {  // small image: split channels too
    const int ch_words = CeilDiv(s.out_c, kBits);
    const int want = static_cast<int>(std::min<long>(ch_words, CeilDiv(target, split.pix_tasks)));
    split.ch_chunk = CeilDiv(ch_words, want) * kBits;
    split.ch_tasks = CeilDiv(s.out_c, split.ch_chunk);
  }
  return split;
}

bool RunBConv(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
              const int32_t* input, void* output, BConvWorkspace* workspace) {
  BConvWorkspace::Impl* ws = Usable(workspace);
  if (kernel == nullptr || kernel->run == nullptr) {
    try {
      RunReference(plan, input, output, ws ? ws->slots[0].accum.data() : nullptr);
    } catch (...) {
      return false;
    }
    return true;
  }
  return RunOptimized(plan, kernel, num_threads, input, output, /*allow_fuse=*/true, ws);
}

bool RunBConvRange(const BConvPlan& plan, const BgemmKernel* kernel, const int32_t* input,
                   int32_t* output, long begin, long end, BConvWorkspace* workspace) {
  if (plan.out_type != OutputType::kInt32 || kernel == nullptr || kernel->run == nullptr)
    return false;
  ConvJob job;
  job.workspace = Usable(workspace);
  job.plan = &plan;
  job.kernel = kernel;
  job.input = input;
  job.output = output;
  job.fuse = false;
  job.out_origin = begin;
  job.pix_chunk = end - begin;
  job.ch_chunk = plan.shape.out_c;
  job.ch_tasks = 1;
  return RunRangeWithScratch(job, begin, end, 0, plan.shape.out_c);
}

void SetMinMacsPerThread(double macs) { g_min_macs_per_thread.store(macs); }

bool RunBConvUnfused(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
                     const int32_t* input, void* output) {
  if (kernel == nullptr || kernel->run == nullptr) return RunBConv(plan, kernel, 1, input, output);
  return RunOptimized(plan, kernel, num_threads, input, output, /*allow_fuse=*/false, nullptr);
}

void AlignedWords::Free::operator()(uint32_t* p) const {
  ::operator delete(p, std::align_val_t(64));
}

void AlignedWords::assign_zero(size_t n) {
  data_.reset();
  size_ = 0;
  if (n == 0) return;
  auto* p = static_cast<uint32_t*>(::operator new(n * sizeof(uint32_t), std::align_val_t(64)));
  std::memset(p, 0, n * sizeof(uint32_t));
  data_.reset(p);
  size_ = n;
}

AlignedWords& AlignedWords::operator=(const AlignedWords& o) {
  if (this == &o) return *this;
  assign_zero(o.size_);
  if (o.size_ != 0) std::memcpy(data_.get(), o.data_.get(), o.size_ * sizeof(uint32_t));
  return *this;
}

}  // namespace bitlite

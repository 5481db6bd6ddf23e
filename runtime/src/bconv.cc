#include "bconv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "flexbuffer.h"

namespace bitlite {
namespace {

constexpr int kBits = 32;
constexpr int64_t kMaxDim = 1 << 20;        // any single dimension
constexpr int64_t kMaxElements = 1LL << 31;  // any tensor or buffer, in elements
constexpr int kPixelBlock = 32;              // pixels per im2col block

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

// Direct convolution, one output value at a time (the oracle).
void RunReference(const BConvPlan& plan, const int32_t* input, void* output) {
  const BConvShape& s = plan.shape;
  const BConvOptions& o = plan.opt;
  const int og = s.out_c / s.groups;
  const int wpg = s.words_per_group;
  std::vector<int32_t> accum(s.out_c), corr(s.out_c);
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
        WritePixel(plan, accum.data(), use_corr ? corr.data() : nullptr, output,
                   (static_cast<long>(b) * s.out_h + oy) * s.out_w + ox);
      }
}

// ---------------------------------------------------------------- optimized

struct Scratch {
  std::vector<uint32_t> patches;  // kPixelBlock x kwords
  std::vector<int32_t> accum;     // kPixelBlock x out_c
  std::vector<int32_t> corr;      // out_c
  std::vector<int> outside;       // taps outside the image, for one pixel
};

// im2col + binary GEMM over pixels [begin, end) (flattened over the batch).
void RunOptimizedRange(const BConvPlan& plan, const BgemmKernel* kernel, const int32_t* input,
                       void* output, long begin, long end) {
  const BConvShape& s = plan.shape;
  const BConvOptions& o = plan.opt;
  const int og = s.out_c / s.groups;
  const int wpg = s.words_per_group;
  const int taps = s.fh * s.fw;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  Scratch sc;
  sc.patches.assign(static_cast<size_t>(kPixelBlock) * plan.kwords, 0);
  sc.accum.resize(static_cast<size_t>(kPixelBlock) * s.out_c);
  sc.corr.resize(s.out_c);
  sc.outside.reserve(taps);
  for (long p0 = begin; p0 < end; p0 += kPixelBlock) {
    const int n = static_cast<int>(std::min<long>(kPixelBlock, end - p0));
    for (int g = 0; g < s.groups; ++g) {
      for (int i = 0; i < n; ++i) {
        const long p = p0 + i;
        const int b = static_cast<int>(p / per_image);
        const int oy = static_cast<int>((p % per_image) / s.out_w);
        const int ox = static_cast<int>(p % s.out_w);
        uint32_t* row = sc.patches.data() + static_cast<size_t>(i) * plan.kwords;
        for (int fy = 0; fy < s.fh; ++fy)
          for (int fx = 0; fx < s.fw; ++fx) {
            uint32_t* dst = row + (fy * s.fw + fx) * wpg;
            const int iy = oy * o.stride_height - s.pad_top + fy * o.dilation_height;
            const int ix = ox * o.stride_width - s.pad_left + fx * o.dilation_width;
            if (iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w)
              std::memcpy(dst,
                          input + ((static_cast<long>(b) * s.in_h + iy) * s.in_w + ix) *
                                      s.in_words + g * wpg,
                          sizeof(uint32_t) * wpg);
            else
              std::memset(dst, 0, sizeof(uint32_t) * wpg);
          }
        // row tail [taps * wpg, kwords) stays zero from the assign above
      }
      kernel->run(sc.patches.data(), n,
                  plan.packed_filters.data() + static_cast<size_t>(g) * og * plan.kwords, og,
                  plan.kwords, sc.accum.data() + g * og, s.out_c);
    }
    for (int i = 0; i < n; ++i) {
      const long p = p0 + i;
      const int oy = static_cast<int>((p % per_image) / s.out_w);
      const int ox = static_cast<int>(p % s.out_w);
      int32_t* acc = sc.accum.data() + static_cast<size_t>(i) * s.out_c;
      const int32_t* corr = nullptr;
      if (plan.zero_pad != ZeroPadMode::kNone) {
        sc.outside.clear();
        for (int fy = 0; fy < s.fh; ++fy)
          for (int fx = 0; fx < s.fw; ++fx) {
            const int iy = oy * o.stride_height - s.pad_top + fy * o.dilation_height;
            const int ix = ox * o.stride_width - s.pad_left + fx * o.dilation_width;
            if (!(iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w))
              sc.outside.push_back(fy * s.fw + fx);
          }
        if (!sc.outside.empty()) {
          // The GEMM read outside taps as +1 (bit 0): it counted the tap's set
          // filter bits. Replace that by the zero-padding semantics.
          for (int c = 0; c < s.out_c; ++c) {
            const int32_t* tp = plan.tap_popcount.data() + static_cast<size_t>(c) * taps;
            int32_t bits = 0;
            for (int t : sc.outside) bits += tp[t];
            if (plan.zero_pad == ZeroPadMode::kIntegerAccum)
              acc[c] += static_cast<int32_t>(sc.outside.size()) * (s.channels_per_group / 2) -
                        bits;
            else
              sc.corr[c] = static_cast<int32_t>(sc.outside.size()) * s.channels_per_group -
                           2 * bits;
          }
          if (plan.zero_pad == ZeroPadMode::kFloatCorrection) corr = sc.corr.data();
        }
      }
      WritePixel(plan, acc, corr, output, p);
    }
  }
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
  if (opt.padding == 0 && opt.pad_values == 0) {
    if (t.out_type == OutputType::kFloat32 && act == Activation::kNone)
      plan->zero_pad = ZeroPadMode::kFloatCorrection;
    else if (s.channels_per_group % 2 == 0)
      plan->zero_pad = ZeroPadMode::kIntegerAccum;
    else
      return Err("SAME padding with pad_values=0 and int8/bitpacked output or a fused "
                 "activation needs an even number of input channels per group (got " +
                 std::to_string(s.channels_per_group) + ")");
  }

  if (t.out_type == OutputType::kBitpacked) {
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

void RunBConv(const BConvPlan& plan, const BgemmKernel* kernel, int num_threads,
              const int32_t* input, void* output) {
  if (kernel == nullptr || kernel->run == nullptr) {
    RunReference(plan, input, output);
    return;
  }
  const long pixels = static_cast<long>(plan.shape.batch) * plan.shape.out_h * plan.shape.out_w;
  const long blocks = (pixels + kPixelBlock - 1) / kPixelBlock;
  const int threads = static_cast<int>(std::max<long>(1, std::min<long>(num_threads, blocks)));
  if (threads == 1) {
    RunOptimizedRange(plan, kernel, input, output, 0, pixels);
    return;
  }
  std::vector<std::thread> pool;
  const long per = (blocks + threads - 1) / threads * kPixelBlock;
  for (int t = 1; t < threads; ++t) {
    const long b = t * per, e = std::min(pixels, b + per);
    if (b < e)
      pool.emplace_back(RunOptimizedRange, std::cref(plan), kernel, input, output, b, e);
  }
  RunOptimizedRange(plan, kernel, input, output, 0, std::min(pixels, per));
  for (auto& th : pool) th.join();
}

}  // namespace bitlite

#include "kbit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "flexbuffer.h"
#include "simple_ops.h"

namespace bitlite {
namespace {

constexpr int kBits = 32;
constexpr int kMaxDim = 1 << 20;

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

std::string Err(const std::string& s) { return "BitliteKbitBconv2d: " + s; }

// The epilogue's helpers are inlined into each vector-width clone of their callers
// (KBIT_CLONES below), so that they are vectorized at that width too.
#if defined(__GNUC__)
#define KBIT_INLINE inline __attribute__((always_inline))
#else
#define KBIT_INLINE inline
#endif

// Output size and leading pad of one axis of a SAME (0) or VALID (1) window.
bool Window(int in, int size, int stride, int padding, int* out, int* pad) {
  if (padding == 0) {
    *out = CeilDiv(in, stride);
  } else {
    if (size > in) return false;
    *out = (in - size) / stride + 1;
  }
  *pad = std::max(0, ((*out - 1) * stride + size - in) / 2);
  return true;
}

// P's zero-padding fix for conv pixel (oy, ox): the GEMM read every outside tap as +1
// (bit 0: it counted the tap's set filter bits); a zero activation is -1 on every used
// channel bit of every plane (channels - set bits). `fix` gets one value per channel.
KBIT_INLINE bool PaddingFix(const KbitPlan& plan, int oy, int ox, int32_t* fix) {
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c;
  bool any = false;
  for (int fy = 0; fy < s.fh; ++fy)
    for (int fx = 0; fx < s.fw; ++fx) {
      const int iy = oy * plan.opt.stride_height - s.pad_top + fy;
      const int ix = ox * plan.opt.stride_width - s.pad_left + fx;
      if (iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w) continue;
      if (!any) std::fill(fix, fix + oc, 0);
      any = true;
      const int32_t* t = plan.tap_fix.data() + static_cast<size_t>(fy * s.fw + fx) * oc;
      for (int c = 0; c < oc; ++c) fix[c] += t[c];
    }
  return any;
}

// Levels of `n` channels from their keys, in place (the loops vectorize).
KBIT_INLINE void Levels(const KbitPlan& plan, int32_t* key, int n) {
  const int32_t* inv = plan.invert.data();
  int32_t count[256];
  for (int c0 = 0; c0 < n; c0 += 256) {
    const int m = std::min(256, n - c0);
    std::fill(count, count + m, 0);
    for (int j = 0; j < plan.levels; ++j) {
      const int32_t* t = plan.key_thresholds.data() + static_cast<size_t>(j) * plan.out_c + c0;
      for (int c = 0; c < m; ++c) count[c] += key[c0 + c] > t[c];
    }
    // invert is 0 or -1: (n ^ -1) + levels + 1 = levels - n, branch-free (vectorizes)
    for (int c = 0; c < m; ++c)
      key[c0 + c] = (count[c] ^ inv[c0 + c]) + (inv[c0 + c] & (plan.levels + 1));
  }
}

// Output pixel (n, py, px)'s pooled keys over all channels into `key`.
KBIT_INLINE void PoolKeys(const KbitPlan& plan, const int32_t* sums, int n, int py, int px,
                          int32_t* key) {
  const KbitOptions& o = plan.opt;
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c;
  const auto at = [&](int y, int x) { return sums + ((static_cast<long>(n) * s.out_h + y) * s.out_w + x) * oc; };
  if (o.pool_height == 0) {
    std::copy(at(py, px), at(py, px) + oc, key);
    return;
  }
  bool first = true;
  for (int dy = 0; dy < o.pool_height; ++dy) {
    const int y = py * o.pool_stride_height - plan.pool_pad_top + dy;
    if (y < 0 || y >= s.out_h) continue;
    for (int dx = 0; dx < o.pool_width; ++dx) {
      const int x = px * o.pool_stride_width - plan.pool_pad_left + dx;
      if (x < 0 || x >= s.out_w) continue;
      const int32_t* v = at(y, x);
      if (first) std::copy(v, v + oc, key);
      else
        for (int c = 0; c < oc; ++c) key[c] = std::max(key[c], v[c]);
      first = false;
    }
  }
}

// Plane bits of levels q [rows][channels] as +-1 floats (+1: the bit of q is 1), to be
// packed by BitpackFloat (x < 0 -> bit 1).
KBIT_INLINE void LevelSigns(const int32_t* q, long count, int planes, long plane_stride,
                            float* signs) {
  for (int i = 0; i < planes; ++i)
    for (long c = 0; c < count; ++c)
      signs[i * plane_stride + c] = ((q[c] >> i) & 1) ? 1.0f : -1.0f;
}

}  // namespace

std::string ParseKbitOptions(const uint8_t* buffer, size_t length, KbitOptions* out) {
  static const std::vector<std::string> keys = {
      "channels_in", "planes", "out_planes", "padding", "stride_height", "stride_width",
      "pool_height", "pool_width", "pool_stride_height", "pool_stride_width", "pool_padding"};
  std::vector<int32_t> v;
  std::string error;
  if (!ReadInt32Options(buffer, length, keys, &v, &error)) return Err(error);
  KbitOptions o;
  o.channels_in = v[0];
  o.planes = v[1];
  o.out_planes = v[2];
  o.padding = v[3];
  o.stride_height = v[4];
  o.stride_width = v[5];
  o.pool_height = v[6];
  o.pool_width = v[7];
  o.pool_stride_height = v[8];
  o.pool_stride_width = v[9];
  o.pool_padding = v[10];
  if (o.channels_in < 1 || o.channels_in > kMaxDim) return Err("channels_in out of range");
  if (o.planes < 1 || o.planes > kMaxKbitPlanes) return Err("planes must be in 1..4");
  if (o.out_planes < 0 || o.out_planes > kMaxKbitPlanes) return Err("out_planes must be in 0..4");
  if (o.padding != 0 && o.padding != 1) return Err("padding must be SAME (0) or VALID (1)");
  if (o.pool_padding != 0 && o.pool_padding != 1)
    return Err("pool_padding must be SAME (0) or VALID (1)");
  for (int32_t x : {o.stride_height, o.stride_width, o.pool_stride_height, o.pool_stride_width})
    if (x < 1 || x > kMaxDim) return Err("strides must be in [1, 2^20]");
  if (o.pool_height < 0 || o.pool_width < 0 || o.pool_height > kMaxDim || o.pool_width > kMaxDim ||
      (o.pool_height == 0) != (o.pool_width == 0))
    return Err("pool size out of range");
  if (o.pool_height > 0 && o.out_planes == 0) return Err("a fused pool needs planes output");
  *out = o;
  return "";
}

std::string PlanKbit(const KbitOptions& opt, const KbitTensors& t, KbitPlan* plan) {
  if (t.in_dims[0] % opt.planes != 0)
    return Err("input batch " + std::to_string(t.in_dims[0]) + " is not a multiple of planes=" +
               std::to_string(opt.planes));
  const int out_c = t.filter_dims[0];
  const int taps = t.filter_dims[1] * t.filter_dims[2];
  const int64_t levels_in = (1 << opt.planes) - 1;
  const int64_t depth = levels_in * taps * int64_t(opt.channels_in);
  if (depth > (1 << 24)) return Err("the receptive field is too large for exact float counts");
  // The GEMM: counts a_i as float (exact below 2^24): clamp(2a) * 0.5 + 0, i.e. LCE's
  // transform with post multiplier -0.5 and post bias depth_i / 2.
  BConvOptions bopt;
  bopt.channels_in = opt.channels_in;
  bopt.padding = opt.padding;
  bopt.pad_values = 1;
  bopt.stride_height = opt.stride_height;
  bopt.stride_width = opt.stride_width;
  const float half_depth = 0.5f * static_cast<float>(int64_t(taps) * opt.channels_in);
  std::vector<float> unit_mul(out_c, -0.5f), unit_bias(out_c, half_depth);
  BConvTensors bt{};
  bt.in_dims = t.in_dims;
  bt.filter_dims = t.filter_dims;
  bt.filter = t.filter;
  bt.post_mul = unit_mul.data();
  bt.post_bias = unit_bias.data();
  bt.out_type = OutputType::kFloat32;
  std::string e = PlanBConv(bopt, bt, &plan->conv);
  if (!e.empty()) return "BitliteKbitBconv2d: " + e;
  if (plan->conv.shape.groups != 1) return Err("grouped convolutions are not supported");
  plan->opt = opt;
  plan->batch = t.in_dims[0] / opt.planes;
  plan->out_c = out_c;
  plan->depth = depth;
  const BConvShape& s = plan->conv.shape;
  plan->out_h = s.out_h;
  plan->out_w = s.out_w;
  const int n_taps = s.fh * s.fw;
  plan->tap_fix.assign(static_cast<size_t>(n_taps) * out_c, 0);
  for (int c = 0; c < out_c; ++c)
    for (int tap = 0; tap < n_taps; ++tap)
      plan->tap_fix[static_cast<size_t>(tap) * out_c + c] =
          s.channels_per_group - 2 * plan->conv.tap_popcount[static_cast<size_t>(c) * n_taps + tap];
  if (opt.pool_height > 0) {
    int pad_h = 0, pad_w = 0;
    if (!Window(s.out_h, opt.pool_height, opt.pool_stride_height, opt.pool_padding,
                &plan->out_h, &pad_h) ||
        !Window(s.out_w, opt.pool_width, opt.pool_stride_width, opt.pool_padding,
                &plan->out_w, &pad_w))
      return Err("VALID pool larger than its input");
    plan->pool_pad_top = pad_h;
    plan->pool_pad_left = pad_w;
  }
  if (opt.out_planes == 0) {
    if (t.post_mul == nullptr || t.post_bias == nullptr)
      return Err("float output needs post_activation_multiplier and _bias");
    plan->mul.resize(out_c);
    plan->bias.resize(out_c);
    for (int c = 0; c < out_c; ++c) {  // in double, then float, as PlanBConv / LCE do
      const double pm = t.post_mul[c], pb = t.post_bias[c];
      plan->mul[c] = static_cast<float>(-1 * pm);
      plan->bias[c] = static_cast<float>(pb + static_cast<double>(depth) * pm);
    }
    return "";
  }
  if (t.thresholds == nullptr || t.flags == nullptr)
    return Err("planes output needs thresholds and flags");
  plan->levels = (1 << opt.out_planes) - 1;
  plan->thresholds.assign(t.thresholds, t.thresholds + static_cast<size_t>(out_c) * plan->levels);
  plan->flags.assign(t.flags, t.flags + out_c);
  plan->key_sign.assign(out_c, 0);
  plan->invert.assign(out_c, 0);
  plan->key_thresholds.assign(static_cast<size_t>(out_c) * plan->levels, 0);
  for (int c = 0; c < out_c; ++c) {
    const int32_t f = plan->flags[c];
    if (f < 0 || f > (kKbitPoolMin | kKbitFalls)) return Err("flags must be in 0..3");
    const bool neg = opt.pool_height > 0 && (f & kKbitPoolMin), falls = f & kKbitFalls;
    plan->key_sign[c] = neg ? -1 : 0;
    plan->invert[c] = neg != falls ? -1 : 0;  // the four cases below
    for (int j = 0; j < plan->levels; ++j) {
      const int64_t t = plan->thresholds[static_cast<size_t>(c) * plan->levels + j];
      if (t < -1 || t > depth + 1) return Err("thresholds out of range");
      // key = P: rising q = #{key > T}; falling q = L - #{key > T - 1}.
      // key = -P: rising q = L - #{key > -T - 1}; falling q = #{key > -T}.
      plan->key_thresholds[static_cast<size_t>(j) * out_c + c] =
          static_cast<int32_t>(neg ? (falls ? -t : -t - 1) : (falls ? t - 1 : t));
    }
  }
  return "";
}

void KbitOutputDims(const KbitPlan& plan, int dims[4]) {
  const bool planes = plan.opt.out_planes > 0;
  dims[0] = planes ? plan.opt.out_planes * plan.batch : plan.batch;
  dims[1] = plan.out_h;
  dims[2] = plan.out_w;
  dims[3] = planes ? CeilDiv(plan.out_c, kBits) : plan.out_c;
}

bool KbitScratch::Reserve(const KbitPlan& plan, const BgemmKernel* kernel, int threads) {
  const BConvShape& s = plan.conv.shape;
  const size_t pixels = static_cast<size_t>(plan.batch) * s.out_h * s.out_w;
  try {
    counts.assign(pixels * plan.opt.planes * s.out_c, 0.0f);
    if (plan.opt.out_planes > 0) sums.assign(pixels * s.out_c, 0);
    fix.assign(s.out_c, 0);
    key.assign(s.out_c, 0);
    if (plan.opt.out_planes > 0)
      signs.assign(static_cast<size_t>(plan.opt.out_planes) * plan.batch * plan.out_h *
                       plan.out_w * s.out_c, 0.0f);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return workspace.Reserve(plan.conv, kernel, threads);
}

// The epilogue's loops are plain C++ compiled once per x86 vector width (the library's
// baseline is SSE2) and picked at load time; elsewhere the compiler's baseline.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KBIT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KBIT_CLONES
#endif

namespace {

// Conv pixels [0, pixels): P from the planes' counts (+ the zero-padding fix), then
// either the float output or the key (P or -P) into `sums`.
KBIT_CLONES void CombineCounts(const KbitPlan& plan, const float* counts, long pixels,
                               int32_t* fix, int32_t* sums, float* out) {
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c, planes = plan.opt.planes;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const int32_t scale = (1 << planes) - 1;
  const int32_t hi = static_cast<int32_t>(2 * plan.depth);  // no fused activation
  const long plane_stride = pixels * oc;
  const int32_t* neg = plan.key_sign.data();  // 0 or -1: two's complement negation
  const float* mul = plan.mul.data();
  const float* bias = plan.bias.data();
  for (long p = 0; p < pixels; ++p) {
    const int oy = static_cast<int>((p % per_image) / s.out_w);
    const int ox = static_cast<int>(p % s.out_w);
    const bool border = plan.opt.padding == 0 && PaddingFix(plan, oy, ox, fix);
    int32_t* sum = sums + (out == nullptr ? p * oc : 0);
    const float* a = counts + p * oc;
    const float* top = a + (planes - 1) * plane_stride;
    for (int c = 0; c < oc; ++c) sum[c] = static_cast<int32_t>(top[c]);
    for (int i = planes - 2; i >= 0; --i) {
      const float* ai = a + i * plane_stride;
      for (int c = 0; c < oc; ++c) sum[c] = 2 * sum[c] + static_cast<int32_t>(ai[c]);
    }
    if (border)
      for (int c = 0; c < oc; ++c) sum[c] += scale * fix[c];
    if (out == nullptr) {
      for (int c = 0; c < oc; ++c) sum[c] = (sum[c] ^ neg[c]) - neg[c];
      continue;
    }
    float* y = out + p * oc;
    for (int c = 0; c < oc; ++c) {
      const int32_t x = std::max(std::min(2 * sum[c], hi), 0);
      y[c] = static_cast<float>(x) * mul[c] + bias[c];
    }
  }
}

// Output pixels: pooled key -> level -> +-1 per plane bit into `signs`.
KBIT_CLONES void LevelsOfPixels(const KbitPlan& plan, const int32_t* sums, int32_t* key,
                                float* signs) {
  const int oc = plan.out_c;
  const long out_pixels = static_cast<long>(plan.batch) * plan.out_h * plan.out_w;
  for (long p = 0; p < out_pixels; ++p) {
    const int n = static_cast<int>(p / (static_cast<long>(plan.out_h) * plan.out_w));
    const int py = static_cast<int>((p / plan.out_w) % plan.out_h);
    const int px = static_cast<int>(p % plan.out_w);
    PoolKeys(plan, sums, n, py, px, key);
    Levels(plan, key, oc);
    LevelSigns(key, oc, plan.opt.out_planes, out_pixels * oc, signs + p * oc);
  }
}

// q = #{j : !(x + t_j < 0)} (the ADD, then LCE's sign test) -> +-1 per plane bit.
KBIT_CLONES void QuantizeLevels(const float* x, long rows, int channels, const float* offsets,
                                int planes, float* signs) {
  const int levels = (1 << planes) - 1;
  const long count = rows * channels;
  int32_t q[256];
  for (long r = 0; r < rows; ++r)
    for (int c0 = 0; c0 < channels; c0 += 256) {
      const int m = std::min(256, channels - c0);
      const float* xr = x + r * channels + c0;
      std::fill(q, q + m, 0);
      for (int j = 0; j < levels; ++j) {
        const float* t = offsets + static_cast<long>(j) * channels + c0;
        for (int c = 0; c < m; ++c) q[c] += !(xr[c] + t[c] < 0.0f);
      }
      LevelSigns(q, m, planes, count, signs + r * channels + c0);
    }
}

}  // namespace

bool RunKbit(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads,
             const int32_t* input, void* output, KbitScratch* scratch) {
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c;
  const long pixels = static_cast<long>(s.out_h) * s.out_w * plan.batch;
  if (scratch->counts.size() < static_cast<size_t>(pixels) * plan.opt.planes * oc ||
      scratch->fix.size() < static_cast<size_t>(oc) || scratch->key.size() < static_cast<size_t>(oc))
    return false;
  if (!RunBConv(plan.conv, kernel, num_threads, input, scratch->counts.data(), &scratch->workspace))
    return false;
  if (plan.opt.out_planes == 0) {
    CombineCounts(plan, scratch->counts.data(), pixels, scratch->fix.data(), scratch->key.data(),
                  static_cast<float*>(output));
    return true;
  }
  CombineCounts(plan, scratch->counts.data(), pixels, scratch->fix.data(), scratch->sums.data(),
                nullptr);
  LevelsOfPixels(plan, scratch->sums.data(), scratch->key.data(), scratch->signs.data());
  const long out_pixels = static_cast<long>(plan.batch) * plan.out_h * plan.out_w;
  const int words = CeilDiv(oc, kBits);
  for (int i = 0; i < plan.opt.out_planes; ++i)
    BitpackFloat(scratch->signs.data() + i * out_pixels * oc, out_pixels, oc,
                 static_cast<int32_t*>(output) + i * out_pixels * words);
  return true;
}

void KbitQuantize(const float* x, long rows, int channels, const float* offsets, int planes,
                  float* signs, int32_t* out) {
  QuantizeLevels(x, rows, channels, offsets, planes, signs);
  const long count = rows * channels;
  const int words = CeilDiv(channels, kBits);
  for (int i = 0; i < planes; ++i) BitpackFloat(signs + i * count, rows, channels, out + i * rows * words);
}

}  // namespace bitlite

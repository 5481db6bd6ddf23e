#include "simple_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "flexbuffer.h"
#include "thread_pool.h"

namespace bitlite {
namespace {

constexpr int64_t kMaxDim = 1 << 20;
// The least work worth a pool thread of its own (~1.5 us each: the pool's workers
// spin between the ops of an invoke, so waking one costs well under that).
constexpr long kMinPackValuesPerThread = 32768;   // LceQuantize: 6 us per 131072 floats
constexpr long kMinPoolWordTapsPerThread = 2048;  // LceBMaxPool2d: ~1 ns per word per tap

// Rows per thread for a pack of `channels` values per row.
long MinPackRows(int channels) {
  return std::max<long>(1, kMinPackValuesPerThread / std::max(1, channels));
}

// pack(rows' input, n rows, their output) over [0, rows) split across the threads.
template <typename T, typename Pack>
void PackRows(const T* in, long rows, int channels, int32_t* out, int threads, Pack pack) {
  const int64_t words = (int64_t(channels) + 31) / 32;
  ParallelRanges(threads, rows, MinPackRows(channels), [&](int, long r0, long r1) {
    pack(in + r0 * int64_t(channels), r1 - r0, out + r0 * words);
  });
}

template <typename T, typename Negative>
void Bitpack(const T* in, long rows, int channels, int32_t* out, Negative negative) {
  // 64-bit: channels may be up to 2^31 - 1 (channels + 31 overflowed an int; fuzzing).
  const int64_t words = (int64_t(channels) + 31) / 32;
  for (long r = 0; r < rows; ++r) {
    const T* x = in + r * int64_t(channels);
    uint32_t* o = reinterpret_cast<uint32_t*>(out) + r * words;
    int64_t c = 0;
    for (int64_t w = 0; w < words; ++w) {
      const int64_t end = std::min<int64_t>(channels, c + 32);
      uint32_t bits = 0;
      for (int i = 0; c < end; ++c, ++i) bits |= static_cast<uint32_t>(negative(x[c])) << i;
      o[w] = bits;
    }
  }
}

}  // namespace

void BitpackFloat(const float* in, long rows, int channels, int32_t* out, int threads) {
  PackRows(in, rows, channels, out, threads, [channels](const float* x, long n, int32_t* o) {
#if defined(__x86_64__) || defined(__i386__)
    if (BitpackFloatX86(x, n, channels, o)) return;
#endif
#if defined(__aarch64__)
    if (BitpackFloatNeon(x, n, channels, o)) return;
#endif
    Bitpack(x, n, channels, o, [](float v) { return v < 0.0f; });
  });
}

void BitpackInt8(const int8_t* in, long rows, int channels, int32_t zero_point, int32_t* out,
                 int threads) {
  PackRows(in, rows, channels, out, threads, [=](const int8_t* x, long n, int32_t* o) {
    Bitpack(x, n, channels, o, [zero_point](int8_t v) { return int32_t(v) < zero_point; });
  });
}

void BitpackBool(const bool* in, long rows, int channels, int32_t* out, int threads) {
  // Read as bytes: a model's bool tensor may hold any byte (non-zero is true), and
  // loading one that is neither 0 nor 1 as a C++ bool is undefined behaviour (found by
  // the op-level fuzzer under UBSan).
  PackRows(reinterpret_cast<const uint8_t*>(in), rows, channels, out, threads,
           [channels](const uint8_t* x, long n, int32_t* o) {
             Bitpack(x, n, channels, o, [](uint8_t v) { return v == 0; });
           });
}

std::string ParseMaxPoolOptions(const uint8_t* buffer, size_t length, MaxPoolOptions* out) {
  static const std::vector<std::string> keys = {"filter_height", "filter_width", "padding",
                                                "stride_height", "stride_width"};
  std::vector<int32_t> v;
  std::string error;
  if (!ReadInt32Options(buffer, length, keys, &v, &error)) return "LceBMaxPool2d: " + error;
  MaxPoolOptions o;
  o.filter_height = v[0];
  o.filter_width = v[1];
  o.padding = v[2];
  o.stride_height = v[3];
  o.stride_width = v[4];
  for (int32_t x : {o.filter_height, o.filter_width, o.stride_height, o.stride_width})
    if (x < 1 || x > kMaxDim) return "LceBMaxPool2d: filter sizes and strides must be >= 1";
  if (o.padding != 0 && o.padding != 1)
    return "LceBMaxPool2d: padding must be SAME (0) or VALID (1)";
  *out = o;
  return "";
}

std::string PlanMaxPool(const MaxPoolOptions& o, const int in_dims[4], MaxPoolShape* s) {
  for (int i = 0; i < 4; ++i)
    if (in_dims[i] < 1 || in_dims[i] > kMaxDim)
      return "LceBMaxPool2d: input dimensions must be in [1, 2^20]";
  s->batch = in_dims[0];
  s->in_h = in_dims[1];
  s->in_w = in_dims[2];
  s->words = in_dims[3];
  if (int64_t(s->batch) * s->in_h * s->in_w * s->words > (1LL << 31))
    return "LceBMaxPool2d: input too large";
  if (o.padding == 0) {
    s->out_h = (s->in_h + o.stride_height - 1) / o.stride_height;
    s->out_w = (s->in_w + o.stride_width - 1) / o.stride_width;
  } else {
    if (o.filter_height > s->in_h || o.filter_width > s->in_w)
      return "LceBMaxPool2d: VALID padding with a window larger than the input";
    s->out_h = (s->in_h - o.filter_height) / o.stride_height + 1;
    s->out_w = (s->in_w - o.filter_width) / o.stride_width + 1;
  }
  s->pad_top = static_cast<int>(std::max<int64_t>(
      0, (int64_t(s->out_h - 1) * o.stride_height + o.filter_height - s->in_h) / 2));
  s->pad_left = static_cast<int>(std::max<int64_t>(
      0, (int64_t(s->out_w - 1) * o.stride_width + o.filter_width - s->in_w) / 2));
  return "";
}

namespace {

// Output rows [r0, r1) of BMaxPool (flattened over the batch).
void BMaxPoolRows(const MaxPoolOptions& o, const MaxPoolShape& s, const int32_t* in,
                  int32_t* out, long r0, long r1) {
  for (long r = r0; r < r1; ++r) {
    const int b = static_cast<int>(r / s.out_h), oy = static_cast<int>(r % s.out_h);
    for (int ox = 0; ox < s.out_w; ++ox) {
      int32_t* dst = out + ((static_cast<long>(b) * s.out_h + oy) * s.out_w + ox) * s.words;
      std::fill(dst, dst + s.words, ~int32_t(0));
      const int y0 = std::max(0, oy * o.stride_height - s.pad_top);
      const int y1 = std::min(s.in_h, oy * o.stride_height - s.pad_top + o.filter_height);
      const int x0 = std::max(0, ox * o.stride_width - s.pad_left);
      const int x1 = std::min(s.in_w, ox * o.stride_width - s.pad_left + o.filter_width);
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
          const int32_t* src = in + ((static_cast<long>(b) * s.in_h + y) * s.in_w + x) * s.words;
          for (int w = 0; w < s.words; ++w) dst[w] &= src[w];  // vectorizes
        }
    }
  }
}

}  // namespace

void BMaxPool(const MaxPoolOptions& o, const MaxPoolShape& s, const int32_t* in, int32_t* out,
              int threads) {
  const long rows = static_cast<long>(s.batch) * s.out_h;
  // In double: window sizes may be up to 2^20 each.
  const double row_work = double(s.out_w) * s.words * o.filter_height * o.filter_width;
  const long min_rows = static_cast<long>(std::ceil(kMinPoolWordTapsPerThread / row_work));
  ParallelRanges(threads, rows, min_rows,
                 [&](int, long r0, long r1) { BMaxPoolRows(o, s, in, out, r0, r1); });
}

}  // namespace bitlite

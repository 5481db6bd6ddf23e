#include "kbit.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <tuple>

#include "flexbuffer.h"
#include "kbit_epilogue.h"
#include "thread_pool.h"

namespace bitlite {
namespace {

constexpr int kBits = 32;
constexpr int kMaxDim = 1 << 20;

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

std::string Err(const std::string& s) { return "BitliteKbitBconv2d: " + s; }

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
bool PaddingFix(const KbitPlan& plan, int oy, int ox, int32_t* fix) {
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
void Levels(const KbitPlan& plan, int32_t* key, int n) {
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
void PoolKeys(const KbitPlan& plan, const int32_t* sums, int n, int py, int px, int32_t* key) {
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

// Plane bits of levels q [count] into LCE's words at `out` (bit 1 = -1 = q's bit i is
// 0; bits past `count` are 0): plane i at out + i * plane_stride words.
void PackLevels(const int32_t* q, int count, int planes, long plane_stride, int32_t* out) {
  const int words = CeilDiv(count, kBits);
  for (int i = 0; i < planes; ++i)
    for (int w = 0; w < words; ++w) {
      uint32_t bits = 0;
      for (int c = w * kBits; c < std::min(count, (w + 1) * kBits); ++c)
        bits |= static_cast<uint32_t>(((q[c] >> i) & 1) == 0) << (c % kBits);
      out[i * plane_stride + w] = static_cast<int32_t>(bits);
    }
}

// P's zero-padding fix per border pattern (KbitPlan::fix_rows / fix_index): a conv
// pixel's outside taps are the rows outside [y_lo, y_hi) or columns outside [x_lo, x_hi)
// of its window, so those four bounds name its pattern.
void BorderPatterns(KbitPlan* plan) {
  const BConvShape& s = plan->conv.shape;
  const int oc = s.out_c;
  const int32_t scale = (1 << plan->opt.planes) - 1;
  plan->fix_index.assign(static_cast<size_t>(s.out_h) * s.out_w, -1);
  plan->fix_rows.clear();
  if (plan->opt.padding != 0) return;  // VALID: every tap inside
  std::map<std::tuple<int, int, int, int>, int32_t> patterns;
  for (int oy = 0; oy < s.out_h; ++oy)
    for (int ox = 0; ox < s.out_w; ++ox) {
      const int iy = oy * plan->opt.stride_height - s.pad_top;
      const int ix = ox * plan->opt.stride_width - s.pad_left;
      const auto bounds = std::make_tuple(std::max(0, -iy), std::min(s.fh, s.in_h - iy),
                                          std::max(0, -ix), std::min(s.fw, s.in_w - ix));
      if (bounds == std::make_tuple(0, s.fh, 0, s.fw)) continue;
      auto it = patterns.find(bounds);
      if (it == patterns.end()) {
        it = patterns.emplace(bounds, static_cast<int32_t>(patterns.size())).first;
        std::vector<int32_t> row(oc, 0);
        for (int fy = 0; fy < s.fh; ++fy)
          for (int fx = 0; fx < s.fw; ++fx) {
            if (fy >= std::get<0>(bounds) && fy < std::get<1>(bounds) &&
                fx >= std::get<2>(bounds) && fx < std::get<3>(bounds))
              continue;
            const int32_t* t = plan->tap_fix.data() + static_cast<size_t>(fy * s.fw + fx) * oc;
            for (int c = 0; c < oc; ++c) row[c] += scale * t[c];
          }
        plan->fix_rows.insert(plan->fix_rows.end(), row.begin(), row.end());
      }
      plan->fix_index[static_cast<size_t>(oy) * s.out_w + ox] = it->second;
    }
}

// Conv rows [*y0, *y1) that output rows [oy0, oy1) read (their pool windows).
void BandConvRows(const KbitPlan& plan, int oy0, int oy1, int* y0, int* y1) {
  const KbitOptions& o = plan.opt;
  if (o.pool_height == 0) {
    *y0 = oy0, *y1 = oy1;
    return;
  }
  *y0 = std::max(0, oy0 * o.pool_stride_height - plan.pool_pad_top);
  *y1 = std::min(plan.conv.shape.out_h,
                 (oy1 - 1) * o.pool_stride_height - plan.pool_pad_top + o.pool_height);
}

// Bands of output rows whose conv rows hold at least kBandPixels pixels per plane (a
// couple of GEMM pixel blocks: the filters are streamed once per block either way), so
// that one band's counts (planes x 96 x out_c) stay in cache between the GEMM and the
// epilogue, instead of whole images' (1 MB for VGG-8's first layer).
constexpr long kBandPixels = 96;
std::atomic<long> g_band_pixels{-1};  // < 0: kBandPixels

void PlanBands(KbitPlan* plan) {
  const long set = g_band_pixels.load(std::memory_order_relaxed);
  const long band_pixels = set < 0 ? kBandPixels : set;
  plan->band_rows = 0;
  plan->band_pixels = 0;
  const int conv_w = plan->conv.shape.out_w;
  for (int rows = 1; rows < plan->out_h; ++rows) {
    long most = 0, least = -1;
    for (int oy0 = 0; oy0 < plan->out_h; oy0 += rows) {
      int y0, y1;
      BandConvRows(*plan, oy0, std::min(plan->out_h, oy0 + rows), &y0, &y1);
      const long pixels = static_cast<long>(std::max(0, y1 - y0)) * conv_w;
      most = std::max(most, pixels);
      least = least < 0 ? pixels : std::min(least, pixels);
    }
    // the last band may be short; the others must reach kBandPixels
    if (most >= band_pixels && (least >= band_pixels / 2 || rows * 2 > plan->out_h)) {
      plan->band_rows = rows;
      plan->band_pixels = most;
      return;
    }
  }
}

// ---------------------------------------------------------------- fused tiles

constexpr int kMaxTileBlock = 12;  // tiles per kernel call: 48 pixels, as RunBConv's blocks

// Whether `vec` has fused tiles and they can run `plan`: its filters are packed for them
// and every pool window holds at most one tile's pixels (a 2x2 pool, or none).
bool TilesRun(const KbitPlan& plan, const KbitVector& vec) {
  return vec.tiles != nullptr && plan.tile_filters.size() > 0 &&
         plan.opt.pool_height * plan.opt.pool_width <= kKbitTilePixels;
}

// Pixel pointers per thread: one block of tiles' (pixel x plane) base pointers.
size_t TilePointers(const KbitPlan& plan) {
  return static_cast<size_t>(kMaxTileBlock) * plan.opt.planes * kKbitTilePixels;
}

// The input as the tiles read it: [k * N][h][w][words] with the conv's zero padding in
// place, so that every tap lies a fixed offset from its pixel. `copy`: a padded copy
// (SAME, or a VALID window past the input's edge); else the input itself.
struct TileInput {
  int h = 0, w = 0, top = 0, left = 0;
  bool copy = false;
};

TileInput TileInputOf(const KbitPlan& plan) {
  const BConvShape& s = plan.conv.shape;
  const BConvOptions& o = plan.conv.opt;
  TileInput g;
  g.top = s.pad_top;
  g.left = s.pad_left;
  g.h = std::max(s.in_h + g.top, (s.out_h - 1) * o.stride_height + (s.fh - 1) * o.dilation_height + 1);
  g.w = std::max(s.in_w + g.left, (s.out_w - 1) * o.stride_width + (s.fw - 1) * o.dilation_width + 1);
  g.copy = g.top > 0 || g.left > 0 || g.h > s.in_h || g.w > s.in_w;
  if (!g.copy) g.h = s.in_h, g.w = s.in_w;
  return g;
}

size_t TileInputWords(const KbitPlan& plan) {
  const TileInput g = TileInputOf(plan);
  return g.copy ? static_cast<size_t>(plan.opt.planes) * plan.batch * g.h * g.w *
                      plan.conv.shape.in_words
                : 0;
}

// Copies the input planes into the padded buffer's interior (its border stays zero).
void PadInput(const KbitPlan& plan, const TileInput& g, const int32_t* input, uint32_t* buf) {
  const BConvShape& s = plan.conv.shape;
  const long images = static_cast<long>(plan.opt.planes) * plan.batch;
  const size_t row_bytes = sizeof(uint32_t) * s.in_w * s.in_words;
  for (long m = 0; m < images; ++m)
    for (int y = 0; y < s.in_h; ++y)
      std::memcpy(buf + ((m * g.h + y + g.top) * g.w + g.left) * s.in_words,
                  input + (m * s.in_h + y) * s.in_w * s.in_words, row_bytes);
}

// Tiles: one per output pixel with a pool, else groups of 4 conv pixels (flat over the
// batch).
long TileCount(const KbitPlan& plan) {
  const long out = static_cast<long>(plan.batch) * plan.out_h * plan.out_w;
  return plan.opt.pool_height > 0 ? out : (out + kKbitTilePixels - 1) / kKbitTilePixels;
}

// Tile u's conv pixels: sample n[j] and pixel pix[j] (y * conv_w + x); the last one
// repeats to fill 4 (a clipped pool window, the last group).
void TilePixels(const KbitPlan& plan, long u, int n[kKbitTilePixels],
                long pix[kKbitTilePixels]) {
  const KbitOptions& o = plan.opt;
  const int conv_h = plan.conv.shape.out_h, conv_w = plan.conv.shape.out_w;
  int count = 0;
  if (o.pool_height > 0) {
    const long per_out = static_cast<long>(plan.out_h) * plan.out_w;
    const int py = static_cast<int>((u % per_out) / plan.out_w);
    const int px = static_cast<int>(u % plan.out_w);
    const int y0 = py * o.pool_stride_height - plan.pool_pad_top;
    const int x0 = px * o.pool_stride_width - plan.pool_pad_left;
    for (int y = std::max(0, y0); y < std::min(conv_h, y0 + o.pool_height); ++y)
      for (int x = std::max(0, x0); x < std::min(conv_w, x0 + o.pool_width); ++x) {
        n[count] = static_cast<int>(u / per_out);
        pix[count++] = static_cast<long>(y) * conv_w + x;
      }
  } else {
    const long per_image = static_cast<long>(conv_h) * conv_w;
    const long total = per_image * plan.batch;
    for (long f = u * kKbitTilePixels; f < std::min(total, (u + 1) * kKbitTilePixels); ++f) {
      n[count] = static_cast<int>(f / per_image);
      pix[count++] = f % per_image;
    }
  }
  for (int j = count; j < kKbitTilePixels; ++j) n[j] = n[count - 1], pix[j] = pix[count - 1];
}

// Tiles [u0, u1) in blocks: their rows' pixel pointers into `pixels` (this thread's),
// then the fused kernel writes their output pixels. `in`: the input as TileInput `g`
// lays it out.
void RunTileRange(const KbitPlan& plan, KbitTilesFn fn, const uint32_t* in, const TileInput& g,
                  const long* tap_offsets, const uint32_t** pixels, void* out, long u0,
                  long u1) {
  const BConvShape& s = plan.conv.shape;
  const BConvOptions& o = plan.conv.opt;
  const int oc = plan.out_c, planes = plan.opt.planes;
  const int words = CeilDiv(oc, kBits);
  const bool pool = plan.opt.pool_height > 0;
  const long out_pixels = static_cast<long>(plan.batch) * plan.out_h * plan.out_w;
  const long image_words = static_cast<long>(g.h) * g.w * s.in_words;
  const int32_t* fix[kMaxTileBlock * kKbitTilePixels];
  KbitTiles t;
  t.pixels = pixels;
  t.tap_offsets = tap_offsets;
  t.planes = planes;
  t.taps = s.fh * s.fw;
  t.words = s.words_per_group;
  t.filters = plan.tile_filters.data();
  t.n_out = oc;
  t.fix = fix;
  t.pool = pool;
  t.out_planes = plan.opt.out_planes;
  t.levels = plan.levels;
  t.key_sign = plan.key_sign.data();
  t.key_thresholds = plan.key_thresholds.data();
  t.invert = plan.invert.data();
  t.bits_stride = 2L * words;
  t.bits_plane_stride = 2L * words * out_pixels;
  t.mul = plan.mul.data();
  t.bias = plan.bias.data();
  t.hi = static_cast<int32_t>(2 * plan.depth);
  for (long u = u0; u < u1; u += kMaxTileBlock) {
    t.tiles = static_cast<int>(std::min<long>(kMaxTileBlock, u1 - u));
    for (int i = 0; i < t.tiles; ++i) {
      int n[kKbitTilePixels];
      long pix[kKbitTilePixels];
      TilePixels(plan, u + i, n, pix);
      for (int j = 0; j < kKbitTilePixels; ++j) {
        const int32_t f = plan.fix_index[pix[j]];
        fix[i * kKbitTilePixels + j] =
            f < 0 ? nullptr : plan.fix_rows.data() + static_cast<long>(f) * oc;
        // the pixel's top-left tap, in the padded frame
        const long oy = pix[j] / s.out_w, ox = pix[j] % s.out_w;
        const long at = (oy * o.stride_height * g.w + ox * o.stride_width) * s.in_words;
        for (int pl = 0; pl < planes; ++pl)
          pixels[(static_cast<long>(i) * planes + pl) * kKbitTilePixels + j] =
              in + (static_cast<long>(pl) * plan.batch + n[j]) * image_words + at;
      }
    }
    const long q0 = pool ? u : u * kKbitTilePixels;  // the first output pixel
    const long q1 = pool ? u + t.tiles : std::min(out_pixels, (u + t.tiles) * kKbitTilePixels);
    t.last = pool ? kKbitTilePixels
                  : static_cast<int>(q1 - (q1 - 1) / kKbitTilePixels * kKbitTilePixels);
    if (t.out_planes > 0)
      t.bits = reinterpret_cast<uint16_t*>(static_cast<int32_t*>(out) + q0 * words);
    else
      t.out = static_cast<float*>(out) + q0 * oc;
    fn(t);
    // A last word half no block covered (out_c % 32 in 1..16) is zero.
    if (t.out_planes > 0 && CeilDiv(oc, 16) < 2 * words)
      for (long q = q0; q < q1; ++q)
        for (int i = 0; i < t.out_planes; ++i)
          t.bits[(q - q0) * t.bits_stride + i * t.bits_plane_stride + 2 * words - 1] = 0;
  }
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
  // The GEMM: the counts a_i as raw int32 (outside taps read as +1: pad_values 1).
  BConvOptions bopt;
  bopt.channels_in = opt.channels_in;
  bopt.padding = opt.padding;
  bopt.pad_values = 1;
  bopt.stride_height = opt.stride_height;
  bopt.stride_width = opt.stride_width;
  BConvTensors bt{};
  bt.in_dims = t.in_dims;
  bt.filter_dims = t.filter_dims;
  bt.filter = t.filter;
  bt.out_type = OutputType::kInt32;
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
  BorderPatterns(plan);
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
  PlanBands(plan);
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
  const bool oracle = kernel == nullptr || kernel->run == nullptr;
  const int tasks = std::max(1, std::min(threads, 64));
  const size_t count_rows =
      oracle || plan.band_rows == 0 ? pixels : static_cast<size_t>(plan.band_pixels) * tasks;
  try {
    counts.assign(count_rows * plan.opt.planes * s.out_c, 0);
    sums.assign(oracle && plan.opt.out_planes > 0 ? pixels * s.out_c : 0, 0);
    fix.assign(oracle ? s.out_c : 0, 0);
    key.assign(oracle ? s.out_c : 0, 0);
    const bool tiles = !oracle && TilesRun(plan, KbitVectorFor(kernel));
    tile_pixels.assign(tiles ? tasks * TilePointers(plan) : 0, nullptr);
    tile_input.assign(tiles ? TileInputWords(plan) : 0, 0);
    tile_offsets.clear();
    if (tiles) {
      const TileInput g = TileInputOf(plan);
      for (int fy = 0; fy < s.fh; ++fy)
        for (int fx = 0; fx < s.fw; ++fx)
          tile_offsets.push_back((static_cast<long>(fy) * plan.conv.opt.dilation_height * g.w +
                                  static_cast<long>(fx) * plan.conv.opt.dilation_width) *
                                 s.in_words);
    }
  } catch (const std::bad_alloc&) {
    return false;
  }
  if (!oracle) ReserveThreads(threads);  // the epilogue's (the GEMM's are reserved below)
  return workspace.Reserve(plan.conv, kernel, threads);
}

namespace {

// ---------------------------------------------------------------- the oracle

// Conv pixels [0, pixels): P from the planes' counts (+ the zero-padding fix), then
// either the float output or the key (P or -P) into `sums`.
void CombineCounts(const KbitPlan& plan, const int32_t* counts, long pixels, int32_t* fix,
                   int32_t* sums, float* out) {
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c, planes = plan.opt.planes;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const int32_t scale = (1 << planes) - 1;
  const int32_t hi = static_cast<int32_t>(2 * plan.depth);  // no fused activation
  const long plane_stride = pixels * oc;
  const int32_t* neg = plan.key_sign.data();  // 0 or -1: two's complement negation
  for (long p = 0; p < pixels; ++p) {
    const int oy = static_cast<int>((p % per_image) / s.out_w);
    const int ox = static_cast<int>(p % s.out_w);
    const bool border = plan.opt.padding == 0 && PaddingFix(plan, oy, ox, fix);
    int32_t* sum = sums + (out == nullptr ? p * oc : 0);
    const int32_t* a = counts + p * oc;
    const int32_t* top = a + (planes - 1) * plane_stride;
    for (int c = 0; c < oc; ++c) sum[c] = top[c];
    for (int i = planes - 2; i >= 0; --i) {
      const int32_t* ai = a + i * plane_stride;
      for (int c = 0; c < oc; ++c) sum[c] = 2 * sum[c] + ai[c];
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
      y[c] = static_cast<float>(x) * plan.mul[c] + plan.bias[c];
    }
  }
}

// Output pixels: pooled key -> level -> the output planes' bits.
void LevelsOfPixels(const KbitPlan& plan, const int32_t* sums, int32_t* key, int32_t* out) {
  const int oc = plan.out_c, words = CeilDiv(oc, kBits);
  const long out_pixels = static_cast<long>(plan.batch) * plan.out_h * plan.out_w;
  for (long p = 0; p < out_pixels; ++p) {
    const int n = static_cast<int>(p / (static_cast<long>(plan.out_h) * plan.out_w));
    const int py = static_cast<int>((p / plan.out_w) % plan.out_h);
    const int px = static_cast<int>(p % plan.out_w);
    PoolKeys(plan, sums, n, py, px, key);
    Levels(plan, key, oc);
    PackLevels(key, oc, plan.opt.out_planes, out_pixels * words, out + p * words);
  }
}

// q = #{j : !(x + t_j < 0)} (the ADD, then LCE's sign test) -> the planes' bits.
void QuantizeLevels(const float* x, long rows, int channels, const float* offsets, int planes,
                    int32_t* out) {
  const int levels = (1 << planes) - 1, words = CeilDiv(channels, kBits);
  int32_t q[kBits];
  for (long r = 0; r < rows; ++r)
    for (int c0 = 0; c0 < channels; c0 += kBits) {
      const int m = std::min(kBits, channels - c0);
      const float* xr = x + r * channels + c0;
      std::fill(q, q + m, 0);
      for (int j = 0; j < levels; ++j) {
        const float* t = offsets + static_cast<long>(j) * channels + c0;
        for (int c = 0; c < m; ++c) q[c] += !(xr[c] + t[c] < 0.0f);
      }
      PackLevels(q, m, planes, rows * words, out + r * words + c0 / kBits);
    }
}

// ---------------------------------------------------------------- vector code, threads

// The least elements (pixels x channels x planes) worth a thread of the epilogue's own:
// a few microseconds of work, as a pool wake-up costs.
constexpr long kMinElementsPerThread = 32768;
std::atomic<long> g_min_elements{-1};  // < 0: kMinElementsPerThread

int ThreadsFor(long elements, int num_threads) {
  const long set = g_min_elements.load(std::memory_order_relaxed);
  const long least = set < 0 ? kMinElementsPerThread : set;
  if (least == 0) return std::max(1, num_threads);
  return static_cast<int>(std::max(1L, std::min<long>(num_threads, elements / least)));
}

// The threads RunKbit runs `plan`'s fused tiles on (about min_macs_per_thread of the
// GEMM each), or 0: the kernel has none, or there are fewer tiles than those threads
// (a dense layer's one pixel: the GEMM then splits the channels).
int TileThreads(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads) {
  if (kernel == nullptr || kernel->run == nullptr || !TilesRun(plan, KbitVectorFor(kernel)))
    return 0;
  const long tiles = TileCount(plan);
  const double macs = static_cast<double>(tiles) * plan.opt.planes * kKbitTilePixels *
                      plan.conv.kwords * kBits * plan.out_c;
  const bool split_all = g_min_elements.load(std::memory_order_relaxed) == 0;  // tests
  const int threads = static_cast<int>(std::max(
      1.0, std::min<double>(std::max(1, num_threads),
                            split_all ? num_threads : macs / kernel->min_macs_per_thread)));
  return tiles >= threads ? threads : 0;
}

// Bands [b0, b1) of the k-bit conv: per band, each plane's GEMM over the band's conv
// rows into `buffer` (this thread's), then the epilogue of its output rows. False if a
// GEMM cannot run (no scratch).
bool RunBands(const KbitPlan& plan, const KbitVector& vec, const BgemmKernel* kernel,
              const int32_t* input, BConvWorkspace* workspace, int32_t* buffer, void* out,
              long b0, long b1) {
  const BConvShape& s = plan.conv.shape;
  const int bands = CeilDiv(plan.out_h, plan.band_rows);  // per image
  const long plane_pixels = static_cast<long>(plan.batch) * s.out_h * s.out_w;
  for (long b = b0; b < b1; ++b) {
    const int n = static_cast<int>(b / bands);
    const int oy0 = static_cast<int>(b % bands) * plan.band_rows;
    const int oy1 = std::min(plan.out_h, oy0 + plan.band_rows);
    int y0, y1;
    BandConvRows(plan, oy0, oy1, &y0, &y1);
    const long pixels = static_cast<long>(y1 - y0) * s.out_w;
    const long first = (static_cast<long>(n) * s.out_h + y0) * s.out_w;
    for (int i = 0; i < plan.opt.planes; ++i) {
      const long begin = i * plane_pixels + first;
      if (!RunBConvRange(plan.conv, kernel, input, buffer + i * pixels * s.out_c, begin,
                         begin + pixels, workspace))
        return false;
    }
    const long q0 = (static_cast<long>(n) * plan.out_h + oy0) * plan.out_w;
    vec.epilogue(plan, KbitCounts{buffer, first, pixels * s.out_c}, out, q0,
                 q0 + static_cast<long>(oy1 - oy0) * plan.out_w);
  }
  return true;
}

}  // namespace

bool RunKbit(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads,
             const int32_t* input, void* output, KbitScratch* scratch) {
  const BConvShape& s = plan.conv.shape;
  const int oc = s.out_c;
  const long pixels = static_cast<long>(s.out_h) * s.out_w * plan.batch;
  const bool oracle = kernel == nullptr || kernel->run == nullptr;
  const int tile_threads = TileThreads(plan, kernel, num_threads);
  const size_t pointers = tile_threads ? TilePointers(plan) : 0;
  if (tile_threads > 0 && scratch->tile_pixels.size() >= tile_threads * pointers &&
      scratch->tile_input.size() >= TileInputWords(plan) &&
      scratch->tile_offsets.size() == static_cast<size_t>(s.fh * s.fw)) {
    const TileInput g = TileInputOf(plan);
    const uint32_t* in = reinterpret_cast<const uint32_t*>(input);
    if (g.copy) {
      PadInput(plan, g, input, scratch->tile_input.data());
      in = scratch->tile_input.data();
    }
    const KbitTilesFn fn = KbitVectorFor(kernel).tiles;
    ParallelRanges(tile_threads, TileCount(plan), 1, [&](int part, long u0, long u1) {
      RunTileRange(plan, fn, in, g, scratch->tile_offsets.data(),
                   scratch->tile_pixels.data() + part * pointers, output, u0, u1);
    });
    return true;
  }
  if (!oracle && plan.band_rows > 0) {
    const KbitVector& vec = KbitVectorFor(kernel);
    const long total = static_cast<long>(plan.batch) * CeilDiv(plan.out_h, plan.band_rows);
    const long buffer_words = plan.band_pixels * plan.opt.planes * oc;  // one band's counts
    const long buffers = static_cast<long>(scratch->counts.size()) / buffer_words;
    if (buffers < 1) return false;
    std::atomic<bool> failed{false};
    // One part per thread, each with its own buffer (by part index).
    ParallelRanges(static_cast<int>(std::min<long>(std::max(1, num_threads), buffers)), total, 1,
                   [&](int part, long b0, long b1) {
                     int32_t* buffer = scratch->counts.data() + part * buffer_words;
                     if (!RunBands(plan, vec, kernel, input, &scratch->workspace, buffer, output,
                                   b0, b1))
                       failed.store(true);
                   });
    return !failed.load();
  }
  if (scratch->counts.size() < static_cast<size_t>(pixels) * plan.opt.planes * oc) return false;
  if (!RunBConv(plan.conv, kernel, num_threads, input, scratch->counts.data(), &scratch->workspace))
    return false;
  if (oracle) {
    if (scratch->fix.size() < static_cast<size_t>(oc) || scratch->key.size() < static_cast<size_t>(oc))
      return false;
    if (plan.opt.out_planes == 0) {
      CombineCounts(plan, scratch->counts.data(), pixels, scratch->fix.data(), scratch->key.data(),
                    static_cast<float*>(output));
      return true;
    }
    if (scratch->sums.size() < static_cast<size_t>(pixels) * oc) return false;
    CombineCounts(plan, scratch->counts.data(), pixels, scratch->fix.data(), scratch->sums.data(),
                  nullptr);
    LevelsOfPixels(plan, scratch->sums.data(), scratch->key.data(), static_cast<int32_t*>(output));
    return true;
  }
  const KbitVector& vec = KbitVectorFor(kernel);
  const KbitCounts counts{scratch->counts.data(), 0, pixels * oc};
  ParallelRanges(ThreadsFor(pixels * oc * plan.opt.planes, num_threads),
                 static_cast<long>(plan.batch) * plan.out_h * plan.out_w, 1,
                 [&](int, long q0, long q1) { vec.epilogue(plan, counts, output, q0, q1); });
  return true;
}

void KbitQuantize(const float* x, long rows, int channels, const float* offsets, int planes,
                  int32_t* out, const BgemmKernel* kernel, int num_threads) {
  if (kernel == nullptr || kernel->run == nullptr) {
    QuantizeLevels(x, rows, channels, offsets, planes, out);
    return;
  }
  const KbitVector& vec = KbitVectorFor(kernel);
  ParallelRanges(ThreadsFor(rows * channels * ((1L << planes) - 1), num_threads), rows, 1,
                 [&](int, long r0, long r1) {
                   vec.quantize(x, rows, channels, offsets, planes, out, r0, r1);
                 });
}

size_t DwordFilterWords(int n_out, int k) {
  return static_cast<size_t>((n_out + 15) / 16) * 16 * k;
}

void PackFiltersDwords16(const uint32_t* rows, int n_out, int k, int row_stride, uint32_t* out) {
  std::memset(out, 0, DwordFilterWords(n_out, k) * sizeof(uint32_t));
  for (int o = 0; o < n_out; ++o)
    for (int w = 0; w < k; ++w)
      out[(static_cast<size_t>(o / 16) * k + w) * 16 + o % 16] =
          rows[static_cast<size_t>(o) * row_stride + w];
}

bool KeepKbitFiltersFor(const BgemmKernel* kernel, KbitPlan* plan) {
  KeepFiltersFor(kernel, &plan->conv);
  plan->tile_filters.assign_zero(0);
  if (kernel == nullptr || kernel->run == nullptr || KbitVectorFor(kernel).tiles == nullptr)
    return true;
  const BConvShape& s = plan->conv.shape;
  const int k = s.fh * s.fw * s.words_per_group;
  try {
    plan->tile_filters.assign_zero(DwordFilterWords(plan->out_c, k));
  } catch (const std::bad_alloc&) {
    return false;
  }
  PackFiltersDwords16(plan->conv.packed_filters.data(), plan->out_c, k, plan->conv.kwords,
                      plan->tile_filters.data());
  return true;
}

bool KbitUsesTiles(const KbitPlan& plan, const BgemmKernel* kernel, int num_threads) {
  return TileThreads(plan, kernel, num_threads) > 0;
}

void SetKbitMinElementsPerThread(long elements) { g_min_elements.store(elements); }

void SetKbitBandPixels(long pixels) { g_band_pixels.store(pixels); }

}  // namespace bitlite

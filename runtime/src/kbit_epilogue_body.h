// One instruction set's k-bit epilogue and quantize (kbit_epilogue.h). Included by
// kbit_epilogue.cc once per instruction set, inside a namespace that defines
// KBIT_TARGET (its target attribute) and `Lanes` (kLanes int32 lanes: vectors V,
// float vectors F, lane masks M): one algorithm, compiled per width. No include guard.

// P for channels [c, c + lanes) of a conv pixel (its counts at `a`, plane i at
// a + i * plane_stride): sum_i 2^i a_i, plus its zero-padding fix row (null: inside).
template <int kPlanes>
KBIT_TARGET KBIT_INLINE typename Lanes::V CountP(const int32_t* a, long plane_stride,
                                                 const int32_t* fix, typename Lanes::M m) {
  typename Lanes::V sum = Lanes::Load(a + (kPlanes - 1) * plane_stride, m);
  for (int i = kPlanes - 2; i >= 0; --i)
    sum = Lanes::Add(Lanes::Add(sum, sum), Lanes::Load(a + i * plane_stride, m));
  if (fix != nullptr) sum = Lanes::Add(sum, Lanes::Load(fix, m));
  return sum;
}

// Float output (no pool): y = float(clamp(2P, 0, 2 depth)) * mul + bias, as
// LceBconv2d's transform over the thermometer depth.
template <int kPlanes>
KBIT_TARGET void FloatPixels(const KbitPlan& plan, const KbitCounts& counts, float* out, long q0,
                             long q1) {
  const int oc = plan.out_c;
  const long per_image = static_cast<long>(plan.out_h) * plan.out_w;
  const long plane_stride = counts.plane_stride;
  const typename Lanes::V zero = Lanes::Set(0);
  const typename Lanes::V hi = Lanes::Set(static_cast<int32_t>(2 * plan.depth));
  for (long p = q0; p < q1; ++p) {
    const int32_t f = plan.fix_index[p % per_image];
    const int32_t* fix = f < 0 ? nullptr : plan.fix_rows.data() + static_cast<long>(f) * oc;
    for (int c = 0; c < oc; c += Lanes::kLanes) {
      const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, oc - c));
      const typename Lanes::V sum =
          CountP<kPlanes>(counts.data + (p - counts.first) * oc + c, plane_stride,
                          fix ? fix + c : nullptr, m);
      const typename Lanes::V x = Lanes::Min(Lanes::Max(Lanes::Add(sum, sum), zero), hi);
      Lanes::StoreFloat(out + p * oc + c, x, plan.mul.data() + c, plan.bias.data() + c, m);
    }
  }
}

// Lanes' bits at byte `c / 8` of a row of LCE words (little-endian: bit c % 32 of word
// c / 32 is bit c % 8 of that byte, as the blocked kernels write 16-bit halves).
KBIT_TARGET KBIT_INLINE void StoreBits(int32_t* row, int c, uint32_t bits) {
  std::memcpy(reinterpret_cast<uint8_t*>(row) + c / 8, &bits, Lanes::kLanes / 8);
}

// Zeros the lane groups of each row's last word past `channels` (the bits past the
// channels are 0; the lanes' stores covered [0, channels) rounded up to kLanes).
KBIT_TARGET KBIT_INLINE void ZeroTail(int32_t* row, int channels) {
  const int end = (channels + 31) / 32 * 32;
  for (int c = (channels + Lanes::kLanes - 1) / Lanes::kLanes * Lanes::kLanes; c < end;
       c += Lanes::kLanes)
    StoreBits(row, c, 0);
}

// Planes output, 2^kOutPlanes - 1 levels from kPlanes input planes. Per output pixel
// and chunk of channels: the keys (P or -P) of the conv pixels of its pool window (or
// the one conv pixel), their max kept in `keys` (L1), then per channel block the level
// q (threshold counts) and q's bits straight into the output words (LCE's bit 1 = -1 =
// q's bit is 0). Short loops over the channel blocks, every field the loops read a
// local: the bit stores (bytes) could alias the plan, and the compiler would reload it.
template <int kPlanes, int kOutPlanes>
KBIT_TARGET void PlanePixels(const KbitPlan& plan, const KbitCounts& counts, int32_t* out,
                             long q0, long q1) {
  constexpr int kLevels = (1 << kOutPlanes) - 1;
  constexpr int kChunk = 256;  // channels per pass (a multiple of 32)
  const KbitOptions o = plan.opt;
  const int conv_h = plan.conv.shape.out_h, conv_w = plan.conv.shape.out_w;
  const int out_h = plan.out_h, out_w = plan.out_w, pad_top = plan.pool_pad_top,
            pad_left = plan.pool_pad_left;
  const int oc = plan.out_c, words = (oc + 31) / 32;
  const long per_image = static_cast<long>(conv_h) * conv_w;
  const long plane_stride = counts.plane_stride, first = counts.first;
  const int32_t* const data = counts.data;
  const long out_per_image = static_cast<long>(out_h) * out_w;
  const long out_plane_stride = out_per_image * plan.batch * words;
  const bool pool = o.pool_height > 0;
  const int32_t* const key_thresholds = plan.key_thresholds.data();
  const int32_t* const key_sign = plan.key_sign.data();
  const int32_t* const invert = plan.invert.data();
  const int32_t* const fix_index = plan.fix_index.data();
  const int32_t* const fix_rows = plan.fix_rows.data();
  const typename Lanes::V level_top = Lanes::Set(kLevels + 1);
  alignas(64) int32_t keys[kChunk];
  long n = q0 / out_per_image;
  int py = static_cast<int>((q0 % out_per_image) / out_w);
  int px = static_cast<int>(q0 % out_w);
  for (long q = q0; q < q1; ++q) {
    // the pool window, clipped to the conv output (or the one conv pixel)
    int y0 = py, y1 = py + 1, x0 = px, x1 = px + 1;
    if (pool) {
      y0 = py * o.pool_stride_height - pad_top;
      x0 = px * o.pool_stride_width - pad_left;
      y1 = std::min(conv_h, y0 + o.pool_height), x1 = std::min(conv_w, x0 + o.pool_width);
      y0 = std::max(0, y0), x0 = std::max(0, x0);
    }
    const long image = n * per_image - first;  // the counts' row of conv pixel (0, 0)
    int32_t* dst = out + q * words;
    for (int c0 = 0; c0 < oc; c0 += kChunk) {
      const int c1 = std::min(oc, c0 + kChunk);
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
          const long pixel = static_cast<long>(y) * conv_w + x;
          const int32_t* a = data + (image + pixel) * oc;
          const int32_t f = fix_index[pixel];  // P's zero-padding fix row, or none
          const int32_t* fix = f >= 0 ? fix_rows + static_cast<long>(f) * oc : nullptr;
          const bool first = y == y0 && x == x0;
          for (int c = c0; c < c1; c += Lanes::kLanes) {
            const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, c1 - c));
            const typename Lanes::V sum =
                CountP<kPlanes>(a + c, plane_stride, fix ? fix + c : nullptr, m);
            // neg is 0 or -1: (sum ^ neg) - neg is sum or -sum
            const typename Lanes::V neg = Lanes::Load(key_sign + c, m);
            typename Lanes::V key = Lanes::Sub(Lanes::Xor(sum, neg), neg);
            if (!first) key = Lanes::Max(key, Lanes::Load(keys + (c - c0), m));
            Lanes::Store(keys + (c - c0), key, m);
          }
        }
      for (int c = c0; c < c1; c += Lanes::kLanes) {
        const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, c1 - c));
        const typename Lanes::V key = Lanes::Load(keys + (c - c0), m);
        typename Lanes::V count = Lanes::Set(0);
        for (int j = 0; j < kLevels; ++j)
          count = Lanes::CountGt(count, key, Lanes::Load(key_thresholds + j * oc + c, m));
        // invert is 0 or -1: (n ^ -1) + levels + 1 = levels - n
        const typename Lanes::V inv = Lanes::Load(invert + c, m);
        const typename Lanes::V level =
            Lanes::Add(Lanes::Xor(count, inv), Lanes::And(inv, level_top));
        for (int i = 0; i < kOutPlanes; ++i)
          StoreBits(dst + i * out_plane_stride, c, Lanes::ZeroBits(level, 1 << i, m));
      }
    }
    if (oc % 32 != 0)
      for (int i = 0; i < kOutPlanes; ++i) ZeroTail(dst + i * out_plane_stride, oc);
    if (++px == out_w) {
      px = 0;
      if (++py == out_h) py = 0, ++n;
    }
  }
}

// One conv's epilogue from kPlanes input planes: float, or 1..4 output planes.
template <int kPlanes>
KBIT_TARGET void EpilogueFrom(const KbitPlan& plan, const KbitCounts& counts, void* out, long q0,
                              long q1) {
  int32_t* bits = static_cast<int32_t*>(out);
  switch (plan.opt.out_planes) {
    case 0: FloatPixels<kPlanes>(plan, counts, static_cast<float*>(out), q0, q1); break;
    case 1: PlanePixels<kPlanes, 1>(plan, counts, bits, q0, q1); break;
    case 2: PlanePixels<kPlanes, 2>(plan, counts, bits, q0, q1); break;
    case 3: PlanePixels<kPlanes, 3>(plan, counts, bits, q0, q1); break;
    default: PlanePixels<kPlanes, 4>(plan, counts, bits, q0, q1); break;
  }
}

KBIT_TARGET void Epilogue(const KbitPlan& plan, const KbitCounts& counts, void* out, long q0,
                          long q1) {
  switch (plan.opt.planes) {
    case 1: EpilogueFrom<1>(plan, counts, out, q0, q1); break;
    case 2: EpilogueFrom<2>(plan, counts, out, q0, q1); break;
    case 3: EpilogueFrom<3>(plan, counts, out, q0, q1); break;
    default: EpilogueFrom<4>(plan, counts, out, q0, q1); break;
  }
}

// q = #{j : !(x + t_j < 0)} (the ADD, then LCE's sign test), q's bits packed; per
// channel block, its 2^kPlanes - 1 offsets in registers while the rows stream by.
template <int kPlanes>
KBIT_TARGET void QuantizePlanes(const float* x, long rows, int channels, const float* offsets,
                                int32_t* out, long r0, long r1) {
  constexpr int kLevels = (1 << kPlanes) - 1;
  const int words = (channels + 31) / 32;
  for (int c = 0; c < channels; c += Lanes::kLanes) {
    const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, channels - c));
    typename Lanes::F t[kLevels];
    for (int j = 0; j < kLevels; ++j) t[j] = Lanes::LoadF(offsets + j * channels + c, m);
    for (long r = r0; r < r1; ++r) {
      const typename Lanes::F v = Lanes::LoadF(x + r * channels + c, m);
      typename Lanes::V count = Lanes::Set(0);
      for (int j = 0; j < kLevels; ++j) count = Lanes::CountNotNegative(count, v, t[j]);
      for (int i = 0; i < kPlanes; ++i)
        StoreBits(out + (i * rows + r) * words, c, Lanes::ZeroBits(count, 1 << i, m));
    }
  }
  if (channels % 32 != 0)
    for (long r = r0; r < r1; ++r)
      for (int i = 0; i < kPlanes; ++i) ZeroTail(out + (i * rows + r) * words, channels);
}

KBIT_TARGET void Quantize(const float* x, long rows, int channels, const float* offsets,
                          int planes, int32_t* out, long r0, long r1) {
  switch (planes) {
    case 1: QuantizePlanes<1>(x, rows, channels, offsets, out, r0, r1); break;
    case 2: QuantizePlanes<2>(x, rows, channels, offsets, out, r0, r1); break;
    case 3: QuantizePlanes<3>(x, rows, channels, offsets, out, r0, r1); break;
    default: QuantizePlanes<4>(x, rows, channels, offsets, out, r0, r1); break;
  }
}

// One instruction set's k-bit epilogue and quantize (kbit_epilogue.h). Included by
// kbit_epilogue.cc once per instruction set, inside a namespace that defines
// KBIT_TARGET (its target attribute) and `Lanes` (kLanes int32 lanes: vectors V,
// float vectors F, lane masks M): one algorithm, compiled per width. No include guard.

// P for channels [c, c + lanes) of conv pixel `p`: sum_i 2^i a_i over the planes'
// counts, plus the pixel's zero-padding fix row (null inside the image).
KBIT_TARGET KBIT_INLINE typename Lanes::V CountP(const int32_t* a, long plane_stride, int planes,
                                                 const int32_t* fix, typename Lanes::M m) {
  typename Lanes::V sum = Lanes::Load(a + (planes - 1) * plane_stride, m);
  for (int i = planes - 2; i >= 0; --i)
    sum = Lanes::Add(Lanes::Add(sum, sum), Lanes::Load(a + i * plane_stride, m));
  if (fix != nullptr) sum = Lanes::Add(sum, Lanes::Load(fix, m));
  return sum;
}

// The zero-padding fix row of the conv pixel at `pixel` (y * out_w + x) of its image.
KBIT_TARGET KBIT_INLINE const int32_t* FixRow(const KbitPlan& plan, long pixel) {
  const int32_t f = plan.fix_index[pixel];
  return f < 0 ? nullptr : plan.fix_rows.data() + static_cast<long>(f) * plan.out_c;
}

// Float output (no pool): y = float(clamp(2P, 0, 2 depth)) * mul + bias, as
// LceBconv2d's transform over the thermometer depth.
KBIT_TARGET void FloatPixels(const KbitPlan& plan, const int32_t* counts, float* out, long q0,
                             long q1) {
  const int oc = plan.out_c, planes = plan.opt.planes;
  const long per_image = static_cast<long>(plan.out_h) * plan.out_w;
  const long plane_stride = per_image * plan.batch * oc;
  const typename Lanes::V zero = Lanes::Set(0);
  const typename Lanes::V hi = Lanes::Set(static_cast<int32_t>(2 * plan.depth));
  for (long p = q0; p < q1; ++p) {
    const int32_t* fix = FixRow(plan, p % per_image);
    for (int c = 0; c < oc; c += Lanes::kLanes) {
      const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, oc - c));
      const typename Lanes::V sum =
          CountP(counts + p * oc + c, plane_stride, planes, fix ? fix + c : nullptr, m);
      const typename Lanes::V x = Lanes::Min(Lanes::Max(Lanes::Add(sum, sum), zero), hi);
      Lanes::StoreFloat(out + p * oc + c, x, plan.mul.data() + c, plan.bias.data() + c, m);
    }
  }
}

// Planes output: per output pixel, the key (P or -P) of every conv pixel of its pool
// window, their max, the level q (threshold counts), and q's bits straight into the
// output words (LCE's bit 1 = -1 = q's bit is 0; bits past the channels stay 0).
KBIT_TARGET void PlanePixels(const KbitPlan& plan, const int32_t* counts, int32_t* out, long q0,
                             long q1) {
  const KbitOptions& o = plan.opt;
  const BConvShape& s = plan.conv.shape;
  const int oc = plan.out_c, planes = o.planes, out_planes = o.out_planes;
  const int words = (oc + 31) / 32;
  const long per_image = static_cast<long>(s.out_h) * s.out_w;
  const long plane_stride = per_image * plan.batch * oc;
  const long out_per_image = static_cast<long>(plan.out_h) * plan.out_w;
  const long out_plane_stride = out_per_image * plan.batch * words;
  const bool pool = o.pool_height > 0;
  const typename Lanes::V level_top = Lanes::Set(plan.levels + 1);
  for (long q = q0; q < q1; ++q) {
    const long n = q / out_per_image;
    const int py = static_cast<int>((q % out_per_image) / plan.out_w);
    const int px = static_cast<int>(q % plan.out_w);
    // the pool window, clipped to the conv output (or the one conv pixel)
    int y0 = py, y1 = py + 1, x0 = px, x1 = px + 1;
    if (pool) {
      y0 = py * o.pool_stride_height - plan.pool_pad_top;
      x0 = px * o.pool_stride_width - plan.pool_pad_left;
      y1 = std::min(s.out_h, y0 + o.pool_height), x1 = std::min(s.out_w, x0 + o.pool_width);
      y0 = std::max(0, y0), x0 = std::max(0, x0);
    }
    int32_t* dst = out + q * words;
    for (int w = 0; w < words; ++w) {
      uint32_t bits[kMaxKbitPlanes] = {0, 0, 0, 0};
      for (int h = 0; h < 32 && w * 32 + h < oc; h += Lanes::kLanes) {
        const int c = w * 32 + h;
        const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, oc - c));
        const typename Lanes::V neg = Lanes::Load(plan.key_sign.data() + c, m);
        typename Lanes::V key = Lanes::Set(0);
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x) {
            const long p = n * per_image + static_cast<long>(y) * s.out_w + x;
            const int32_t* fix = FixRow(plan, static_cast<long>(y) * s.out_w + x);
            const typename Lanes::V sum =
                CountP(counts + p * oc + c, plane_stride, planes, fix ? fix + c : nullptr, m);
            // neg is 0 or -1: (sum ^ neg) - neg is sum or -sum
            const typename Lanes::V k = Lanes::Sub(Lanes::Xor(sum, neg), neg);
            key = y == y0 && x == x0 ? k : Lanes::Max(key, k);
          }
        typename Lanes::V count = Lanes::Set(0);
        for (int j = 0; j < plan.levels; ++j)
          count = Lanes::CountGt(count, key,
                                 Lanes::Load(plan.key_thresholds.data() + j * oc + c, m));
        // invert is 0 or -1: (n ^ -1) + levels + 1 = levels - n
        const typename Lanes::V inv = Lanes::Load(plan.invert.data() + c, m);
        const typename Lanes::V level =
            Lanes::Add(Lanes::Xor(count, inv), Lanes::And(inv, level_top));
        for (int i = 0; i < out_planes; ++i) bits[i] |= Lanes::ZeroBits(level, 1 << i, m) << h;
      }
      for (int i = 0; i < out_planes; ++i)
        dst[i * out_plane_stride + w] = static_cast<int32_t>(bits[i]);
    }
  }
}

KBIT_TARGET void Epilogue(const KbitPlan& plan, const int32_t* counts, void* out, long q0,
                          long q1) {
  if (plan.opt.out_planes == 0)
    FloatPixels(plan, counts, static_cast<float*>(out), q0, q1);
  else
    PlanePixels(plan, counts, static_cast<int32_t*>(out), q0, q1);
}

// q = #{j : !(x + t_j < 0)} (the ADD, then LCE's sign test), q's bits packed.
KBIT_TARGET void Quantize(const float* x, long rows, int channels, const float* offsets,
                          int planes, int32_t* out, long r0, long r1) {
  const int levels = (1 << planes) - 1, words = (channels + 31) / 32;
  for (long r = r0; r < r1; ++r) {
    const float* xr = x + r * channels;
    for (int w = 0; w < words; ++w) {
      uint32_t bits[kMaxKbitPlanes] = {0, 0, 0, 0};
      for (int h = 0; h < 32 && w * 32 + h < channels; h += Lanes::kLanes) {
        const int c = w * 32 + h;
        const typename Lanes::M m = Lanes::Mask(std::min(Lanes::kLanes, channels - c));
        const typename Lanes::F v = Lanes::LoadF(xr + c, m);
        typename Lanes::V count = Lanes::Set(0);
        for (int j = 0; j < levels; ++j)
          count = Lanes::CountNotNegative(count, v, Lanes::LoadF(offsets + j * channels + c, m));
        for (int i = 0; i < planes; ++i) bits[i] |= Lanes::ZeroBits(count, 1 << i, m) << h;
      }
      for (int i = 0; i < planes; ++i)
        out[(i * rows + r) * words + w] = static_cast<int32_t>(bits[i]);
    }
  }
}

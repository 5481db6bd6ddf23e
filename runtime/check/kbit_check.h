// kernel_check's section for bitlite's k-bit ops (src/kbit.h), included by
// kernel_check.cc (inside its anonymous namespace) after its Expect / g_per_kernel helpers.
//
// Random BitliteKbitBconv2d configurations (1..4 planes in and out or float output,
// channels not multiples of 8/16/32, SAME / VALID, strides, fused pools of every
// padding, rising / falling / pool-min flags, thresholds at the edges -1 and depth + 1)
// and BitliteKbitQuantize inputs (sums exactly 0, NaN, infinities): every kernel's
// vector code at 1..4 threads, forced to split, must write the plain C++ oracle's
// (reference kernel's) bytes.
namespace kbit_check {

// One random configuration; false when the planner refused it (counted by the caller).
// `banded`: counts the configurations run in bands (KbitPlan::band_rows).
// `tiled`: counts the (kernel, configuration) runs on fused tiles at 1 thread.
bool RandomKbit(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels, int* banded,
                int* tiled) {
  KbitOptions o;
  o.planes = 1 + rng() % kMaxKbitPlanes;
  o.out_planes = rng() % 4 == 0 ? 0 : 1 + rng() % kMaxKbitPlanes;
  // 1 in 16 with long filters (fewer 16-filter blocks per fused tile: kbit_avx512_4x64.cc)
  const bool wide = rng() % 16 == 0;
  o.channels_in = wide ? 600 + rng() % 1200 : 1 + rng() % (rng() % 3 == 0 ? 140 : 40);
  o.padding = rng() % 2;
  o.stride_height = 1 + rng() % 2;
  o.stride_width = 1 + rng() % 2;
  if (o.out_planes > 0 && rng() % 2 == 0) {
    o.pool_height = 1 + rng() % 3;
    o.pool_width = 1 + rng() % 3;
    o.pool_stride_height = 1 + rng() % 3;
    o.pool_stride_width = 1 + rng() % 3;
    o.pool_padding = rng() % 2;
  }
  const int words = (o.channels_in + 31) / 32, batch = 1 + rng() % 2;
  const int fh = 1 + rng() % 3, fw = 1 + rng() % 3;
  const int out_c = 1 + rng() % (rng() % 3 == 0 ? 100 : 40);
  const int side = wide ? 4 : 9;
  const int in_dims[4] = {o.planes * batch, 2 + int(rng() % side), 2 + int(rng() % side), words};
  const int filter_dims[4] = {out_c, fh, fw, words};
  const uint32_t tail = o.channels_in % 32 ? (1u << (o.channels_in % 32)) - 1 : ~0u;
  std::vector<int32_t> filter(size_t(out_c) * fh * fw * words);
  std::vector<int32_t> input(size_t(in_dims[0]) * in_dims[1] * in_dims[2] * words);
  for (size_t i = 0; i < filter.size(); ++i)
    filter[i] = static_cast<int32_t>(int(i % words) == words - 1 ? rng() & tail : rng());
  for (size_t i = 0; i < input.size(); ++i)  // the planes are padded with 0 bits
    input[i] = static_cast<int32_t>(int(i % words) == words - 1 ? rng() & tail : rng());
  const int levels = (1 << o.out_planes) - 1;
  const long depth = long((1 << o.planes) - 1) * fh * fw * o.channels_in;
  std::vector<float> mul(out_c), bias(out_c);
  std::vector<int32_t> thresholds(size_t(out_c) * std::max(levels, 1)), flags(out_c);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int c = 0; c < out_c; ++c) {
    mul[c] = u(rng);
    bias[c] = 10 * u(rng);
    flags[c] = rng() % 4;
    for (int j = 0; j < levels; ++j) {  // near P's middle, or the edges -1 / depth + 1
      const int pick = rng() % 8;
      thresholds[size_t(c) * levels + j] = static_cast<int32_t>(
          pick == 0 ? -1 : pick == 1 ? depth + 1 : depth / 2 + long(rng() % 41) - 20);
    }
  }
  KbitTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(),
                thresholds.data(), flags.data()};
  KbitPlan plan;
  SetKbitBandPixels(rng() % 2 ? -1 : 1 + rng() % 12);  // bands in half the layers
  const std::string error = PlanKbit(o, t, &plan);
  SetKbitBandPixels(-1);
  if (!error.empty()) return false;
  if (plan.band_rows > 0) ++*banded;
  int dims[4];
  KbitOutputDims(plan, dims);
  const size_t n = size_t(dims[0]) * dims[1] * dims[2] * dims[3];
  std::vector<int32_t> want(n, 0x55555555), got(n);  // 4-byte slots: float or words
  const BgemmKernel reference = {"reference", nullptr};
  KbitScratch oracle;
  Expect(oracle.Reserve(plan, &reference, 1) &&
             RunKbit(plan, &reference, 1, input.data(), want.data(), &oracle),
         "kbit oracle runs");
  const std::string what =
      " planes=" + std::to_string(o.planes) + "->" + std::to_string(o.out_planes) +
      " cin=" + std::to_string(o.channels_in) + " cout=" + std::to_string(out_c) +
      " padding=" + std::to_string(o.padding) + " pool=" + std::to_string(o.pool_height) + "x" +
      std::to_string(o.pool_width) + "/" + std::to_string(o.pool_padding);
  for (const BgemmKernel* k : kernels) {
    KbitPlan own = plan;
    Expect(KeepKbitFiltersFor(k, &own), "kbit filters");
    KbitScratch scratch;
    Expect(scratch.Reserve(own, k, 4), "kbit scratch");
    if (KbitUsesTiles(own, k, 1)) ++*tiled;
    for (int threads = 1; threads <= 4; ++threads) {
      std::fill(got.begin(), got.end(), 0x55555555);
      const bool ok = RunKbit(own, k, threads, input.data(), got.data(), &scratch);
      Expect(ok && got == want, std::string("kbit conv ") + k->name + " threads=" +
                                    std::to_string(threads) + what);
      ++g_per_kernel[k->name];
    }
  }
  return true;
}

void RandomQuantize(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels) {
  const int planes = 1 + rng() % kMaxKbitPlanes, levels = (1 << planes) - 1;
  const int channels = 1 + rng() % 80, rows = 1 + rng() % 40;
  const int words = (channels + 31) / 32;
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  std::vector<float> offsets(size_t(levels) * channels), x(size_t(rows) * channels);
  for (auto& v : offsets) v = u(rng);
  const float special[] = {0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::infinity(), 1e-38f};
  for (size_t i = 0; i < x.size(); ++i) {
    const int pick = rng() % 10;
    // x + t exactly 0 for one level (the sign test's tie), or a special value
    x[i] = pick == 0 ? -offsets[(rng() % levels) * size_t(channels) + i % channels]
           : pick == 1 ? special[rng() % 5]
                       : u(rng);
  }
  const size_t n = size_t(planes) * rows * words;
  std::vector<int32_t> want(n, 0x55555555), got(n);
  const BgemmKernel reference = {"reference", nullptr};
  KbitQuantize(x.data(), rows, channels, offsets.data(), planes, want.data(), &reference, 1);
  for (const BgemmKernel* k : kernels)
    for (int threads = 1; threads <= 4; ++threads) {
      std::fill(got.begin(), got.end(), 0x55555555);
      KbitQuantize(x.data(), rows, channels, offsets.data(), planes, got.data(), k, threads);
      Expect(got == want, std::string("kbit quantize ") + k->name + " threads=" +
                              std::to_string(threads) + " planes=" + std::to_string(planes) +
                              " channels=" + std::to_string(channels));
      ++g_per_kernel[k->name];
    }
}

}  // namespace kbit_check

void CheckKbit(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels, int iters) {
  SetKbitMinElementsPerThread(0);  // split even the smallest epilogue over the threads
  int run = 0, refused = 0, banded = 0, tiled = 0;
  bool tiles = false;  // some kernel here has fused tiles
  for (const BgemmKernel* k : kernels) tiles |= KbitVectorFor(k).tiles != nullptr;
  for (int it = 0; it < iters; ++it) {
    if (kbit_check::RandomKbit(rng, kernels, &banded, &tiled))
      ++run;
    else
      ++refused;
    kbit_check::RandomQuantize(rng, kernels);
  }
  SetKbitMinElementsPerThread(-1);
  Expect(run > refused, "most random k-bit configurations are runnable");
  Expect(banded > run / 8, "many random k-bit configurations run in bands");
  Expect(!tiles || tiled > run / 4, "many random k-bit configurations run on fused tiles");
  std::printf("kbit: %d configurations (%d in bands, %d kernel runs on fused tiles) and %d "
              "quantize inputs compared, %d refused\n", run, banded, tiled, iters, refused);
}

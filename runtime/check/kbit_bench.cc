// k-bit layer timings without TFLite (issue 16): VGG-8's fused W1A2 layers
// (BitliteKbitBconv2d as pipeline/tflite/kbit_chains.py writes them: 2 activation
// planes, the pool fused, 2 output planes; the dense head with float output) beside
// the W1A1 layers of the same shapes (LceBconv2d, bitpacked output), interleaved
// round by round so the shared machine's load hits all alike. Per layer: W1A1, the
// k-bit op's GEMM alone (RunBConv over the plane images), the whole k-bit op
// (RunKbit: on fused tiles where the kernel has them, else GEMM then epilogue, in bands
// where the plan has them), and the epilogue alone over the whole GEMM's counts; and the
// first k-bit layer's input quantization (BitliteKbitQuantize, 2 planes) beside W1A1's
// (LceQuantize's BitpackFloat) of the same 32x32x128 floats.
//
//   c++ -std=c++17 -O3 -ffp-contract=off -pthread runtime/check/kbit_bench.cc \
//       $(ls runtime/src/*.cc | grep -v -e /ops.cc -e /delegate.cc) -o kbit_bench
//   kbit_bench [rounds] [kernel] [threads]
// Prints the median and the least microseconds per layer and in total (on a shared
// machine the least is the closest to a quiet one).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../src/bconv.h"
#include "../src/bgemm.h"
#include "../src/kbit.h"
#include "../src/kbit_epilogue.h"
#include "../src/simple_ops.h"

using namespace bitlite;

namespace {

struct Layer {
  const char* name;
  int hw, cin, cout, k, padding, pool;  // padding 0 = SAME; pool: 2x2 stride 2 or 0
  bool float_out;
};

const Layer kLayers[] = {
    {"32x32 128->128 pool", 32, 128, 128, 3, 0, 2, false},
    {"16x16 128->256", 16, 128, 256, 3, 0, 0, false},
    {"16x16 256->256 pool", 16, 256, 256, 3, 0, 2, false},
    {"8x8 256->512", 8, 256, 512, 3, 0, 0, false},
    {"8x8 512->512 pool", 8, 512, 512, 3, 0, 2, false},
    {"dense 4x4x512->1024", 4, 512, 1024, 4, 1, 0, true},
};
constexpr int kPlanes = 2;

struct Prepared {
  BConvPlan w1a1;
  KbitPlan kbit;
  KbitScratch scratch;
  std::vector<int32_t> input;        // kPlanes images (W1A1 reads the first)
  std::vector<int32_t> out, counts;  // big enough for any output
};

void Prepare(const Layer& l, const BgemmKernel* kernel, int threads, std::mt19937& rng,
             Prepared* p) {
  const int words = l.cin / 32, taps = l.k * l.k;
  std::vector<int32_t> filter(size_t(l.cout) * taps * words);
  for (auto& v : filter) v = int32_t(rng());
  p->input.resize(size_t(kPlanes) * l.hw * l.hw * words);
  for (auto& v : p->input) v = int32_t(rng());
  const int filter_dims[4] = {l.cout, l.k, l.k, words};
  BConvOptions o;
  o.channels_in = l.cin;
  o.padding = l.padding;
  o.pad_values = 1;
  const int in1[4] = {1, l.hw, l.hw, words};
  std::vector<float> mul(l.cout, 0.5f), bias(l.cout, 1.0f);
  std::vector<int32_t> thr(l.cout, taps * l.cin / 2);
  BConvTensors t{in1, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                 l.float_out ? OutputType::kFloat32 : OutputType::kBitpacked, 1.0f, 0};
  std::string e = PlanBConv(o, t, &p->w1a1);
  KeepFiltersFor(kernel, &p->w1a1);
  KbitOptions ko;
  ko.channels_in = l.cin;
  ko.planes = kPlanes;
  ko.out_planes = l.float_out ? 0 : kPlanes;
  ko.padding = l.padding;
  if (l.pool) ko.pool_height = ko.pool_width = ko.pool_stride_height = ko.pool_stride_width = l.pool;
  const int depth = 3 * taps * l.cin;
  std::vector<int32_t> levels(size_t(l.cout) * 3), flags(l.cout);
  for (int c = 0; c < l.cout; ++c) {
    for (int j = 0; j < 3; ++j) levels[c * 3 + j] = depth / 2 + int(rng() % 200) - 100;
    std::sort(levels.begin() + c * 3, levels.begin() + c * 3 + 3);
    flags[c] = int(rng() % 4);
  }
  const int in_k[4] = {kPlanes, l.hw, l.hw, words};
  KbitTensors kt{in_k, filter_dims, filter.data(), mul.data(), bias.data(), levels.data(),
                 flags.data()};
  if (e.empty()) e = PlanKbit(ko, kt, &p->kbit);
  if (!e.empty()) std::printf("plan %s: %s\n", l.name, e.c_str());
  KeepKbitFiltersFor(kernel, &p->kbit);
  p->scratch.Reserve(p->kbit, kernel, threads);
  const size_t big = size_t(kPlanes) * l.hw * l.hw * l.cout;
  p->out.resize(big);
  p->counts.resize(big);
}

double Micros(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 50;
  const char* name = argc > 2 ? argv[2] : nullptr;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const char* err = nullptr;
  const BgemmKernel* kernel = SelectKernel(name, &err);
  if (kernel == nullptr) {
    std::printf("kernel: %s\n", err);
    return 2;
  }
  constexpr int n = sizeof(kLayers) / sizeof(kLayers[0]);
  std::mt19937 rng(1);
  std::vector<Prepared> layers(n);
  for (int i = 0; i < n; ++i) Prepare(kLayers[i], kernel, threads, rng, &layers[i]);
  // the first k-bit layer's input: 32x32x128 floats, 3 offsets per channel
  const int q_rows = 32 * 32, q_channels = 128;
  std::vector<float> q_x(size_t(q_rows) * q_channels), q_offsets(3 * q_channels);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : q_x) v = normal(rng);
  for (auto& v : q_offsets) v = normal(rng);
  std::vector<int32_t> q_out(size_t(kPlanes) * q_rows * q_channels / 32);
  // [layer][w1a1, gemm, kbit, epilogue]; row n: the sums; row n + 1: the quantize
  // (w1a1, -, kbit, -)
  std::vector<std::vector<std::vector<double>>> us(n + 2, std::vector<std::vector<double>>(4));
  for (int r = 0; r < rounds + 3; ++r) {
    if (r >= 3) {
      auto t0 = std::chrono::steady_clock::now();
      BitpackFloat(q_x.data(), q_rows, q_channels, q_out.data());
      us[n + 1][0].push_back(Micros(t0));
      t0 = std::chrono::steady_clock::now();
      KbitQuantize(q_x.data(), q_rows, q_channels, q_offsets.data(), kPlanes, q_out.data(),
                   kernel, threads);
      us[n + 1][2].push_back(Micros(t0));
      us[n + 1][1].push_back(0);
      us[n + 1][3].push_back(0);
    }
    double sum[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; ++i) {
      Prepared& p = layers[i];
      double d[4];
      auto t0 = std::chrono::steady_clock::now();
      RunBConv(p.w1a1, kernel, threads, p.input.data(), p.out.data());
      d[0] = Micros(t0);
      t0 = std::chrono::steady_clock::now();
      RunBConv(p.kbit.conv, kernel, threads, p.input.data(), p.counts.data(),
               &p.scratch.workspace);
      d[1] = Micros(t0);
      const long out_pixels = long(p.kbit.batch) * p.kbit.out_h * p.kbit.out_w;
      const BConvShape& s = p.kbit.conv.shape;
      const KbitCounts counts{p.counts.data(), 0, long(p.kbit.batch) * s.out_h * s.out_w * s.out_c};
      t0 = std::chrono::steady_clock::now();
      KbitVectorFor(kernel).epilogue(p.kbit, counts, p.out.data(), 0, out_pixels);
      d[3] = Micros(t0);
      t0 = std::chrono::steady_clock::now();
      RunKbit(p.kbit, kernel, threads, p.input.data(), p.out.data(), &p.scratch);
      d[2] = Micros(t0);
      for (int j = 0; j < 4; ++j) {
        sum[j] += d[j];
        if (r >= 3) us[i][j].push_back(d[j]);  // 3 warm-up rounds
      }
    }
    if (r >= 3)
      for (int j = 0; j < 4; ++j) us[n][j].push_back(sum[j]);
  }
  for (bool least : {false, true}) {
    auto pick = [least](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return least ? v[0] : v[v.size() / 2];
    };
    std::printf("kernel %s, %d thread(s), %s of %d rounds (us)\n", kernel->name, threads,
                least ? "least" : "median", rounds);
    std::printf("%-22s %9s %9s %9s %9s %8s %8s\n", "layer", "W1A1", "kbit", "GEMM",
                "epilogue", "kbit/A1", "GEMM/A1");
    for (int i = 0; i <= n + 1; ++i) {
      const double a = pick(us[i][0]), g = pick(us[i][1]), k = pick(us[i][2]);
      const double e = pick(us[i][3]);
      // how RunKbit ran the layer (the k-bit column)
      const char* path = i >= n ? ""
                         : KbitUsesTiles(layers[i].kbit, kernel, threads) ? "  fused tiles"
                             : "  GEMM + epilogue";
      std::printf("%-22s %9.1f %9.1f %9.1f %9.1f %7.2fx %7.2fx%s\n",
                  i < n ? kLayers[i].name : i == n ? "total" : "quantize 32x32x128", a, k, g,
                  e, k / a, g / a, path);
    }
  }
  return 0;
}

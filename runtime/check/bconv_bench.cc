// Binary-convolution layer timings without TFLite: the binary layers of VGG-8
// (32x32x3, 128-128-256-256-512-512) or of the default LeNet-5 BNN through
// RunBConv, every kernel and thread count interleaved round by round, so the
// shared machine's load hits all alike.
//
//   bconv_bench [rounds] [kernel,kernel,...] [max_threads] [vgg8|lenet5] [layer]
// (`layer`: run only that layer of the net, e.g. to count its instructions.)
// Prints the median microseconds per layer and in total (the median of the rounds' sums),
// and binary GMAC/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../src/bconv.h"
#include "../src/bgemm.h"
#include "../src/thread_pool.h"

using namespace bitlite;

namespace {

struct Layer {
  const char* name;
  int hw, cin, cout;
  OutputType out;
  int k = 3;          // square filter
  int padding = 0;    // 0 = SAME, 1 = VALID
};

// As the export writes VGG-8 (LCE, then pipeline/tflite/chains.py): every
// binary conv outputs bitpacked, the one before a max-pool too (its pool is an
// LceBMaxPool2d on the bits); the dense layers are convolutions over the last
// 4x4 map (VALID) and over 1 pixel. The default LeNet-5 BNN's binary layers as the
// export writes them: a 5x5 VALID convolution (bitpacked, then pooled and
// flattened as bits), then the two dense layers as convolutions over 1 pixel.
const Layer kLenet5[] = {
    {"12x12 32->64 5x5 bits", 12, 32, 64, OutputType::kBitpacked, 5, 1},
    {"dense 1024->512 bits", 1, 1024, 512, OutputType::kBitpacked, 1, 1},
    {"dense 512->10 float", 1, 512, 10, OutputType::kFloat32, 1, 1},
};

const Layer kVgg8[] = {
    {"32x32 128->128 bits", 32, 128, 128, OutputType::kBitpacked},
    {"16x16 128->256 bits", 16, 128, 256, OutputType::kBitpacked},
    {"16x16 256->256 bits", 16, 256, 256, OutputType::kBitpacked},
    {"8x8 256->512 bits", 8, 256, 512, OutputType::kBitpacked},
    {"8x8 512->512 bits", 8, 512, 512, OutputType::kBitpacked},
    {"dense 8192->1024 bits", 4, 512, 1024, OutputType::kBitpacked, 4, 1},  // 4x4 VALID
    {"dense 1024->10 float", 1, 1024, 10, OutputType::kFloat32, 1, 1},
};

struct Prepared {
  BConvPlan plan;
  std::vector<int32_t> input;
  std::vector<float> out;
  double macs;
};

Prepared Prepare(const Layer& l, std::mt19937& rng) {
  Prepared p;
  BConvOptions o;
  o.channels_in = l.cin;
  o.padding = l.padding;
  o.pad_values = 1;
  const int words = l.cin / 32, taps = l.k * l.k;
  const int in_dims[4] = {1, l.hw, l.hw, words};
  const int filter_dims[4] = {l.cout, l.k, l.k, words};
  std::vector<int32_t> filter(size_t(l.cout) * taps * words);
  for (auto& v : filter) v = int32_t(rng());
  std::vector<float> mul(l.cout, 0.5f), bias(l.cout, 1.0f);
  std::vector<int32_t> thr(l.cout, taps * l.cin / 2);
  BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                 l.out, 1.0f, 0};
  const std::string e = PlanBConv(o, t, &p.plan);
  if (!e.empty()) std::printf("plan: %s\n", e.c_str());
  p.input.resize(size_t(l.hw) * l.hw * words);
  for (auto& v : p.input) v = int32_t(rng());
  int dims[4];
  BConvOutputDims(p.plan, dims);
  p.out.resize(size_t(dims[1]) * dims[2] * l.cout);
  p.macs = double(dims[1]) * dims[2] * l.cout * taps * l.cin;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 50;
  std::string names = argc > 2 ? argv[2] : "avx512,avx2";
  std::vector<const BgemmKernel*> kernels;
  for (size_t pos = 0; pos <= names.size();) {
    size_t end = names.find(',', pos);
    if (end == std::string::npos) end = names.size();
    const std::string n = names.substr(pos, end - pos);
    const char* err = nullptr;
    // "<name>-rows": the kernel's row-major entry point (before the blocked one).
    static std::vector<BgemmKernel> rows;
    rows.reserve(8);
    const bool row_major = n.size() > 5 && n.compare(n.size() - 5, 5, "-rows") == 0;
    const BgemmKernel* k = SelectKernel(row_major ? n.substr(0, n.size() - 5).c_str() : n.c_str(), &err);
    if (k && row_major) {
      rows.push_back({"rows", k->run});
      k = &rows.back();
    }
    if (k) kernels.push_back(k); else std::printf("skip %s: %s\n", n.c_str(), err);
    pos = end + 1;
  }
  std::mt19937 rng(1);
  std::vector<Prepared> layers;
  double total_macs = 0;
  const bool lenet = argc > 4 && std::strcmp(argv[4], "lenet5") == 0;
  const Layer* net = lenet ? kLenet5 : kVgg8;
  const int net_layers = lenet ? 3 : 7;
  const int only = argc > 5 ? std::atoi(argv[5]) : -1;
  for (int i = 0; i < net_layers; ++i) {
    Prepared p = Prepare(net[i], rng);  // every layer, so the inputs do not depend on `only`
    if (only >= 0 && i != only) continue;
    layers.push_back(std::move(p)), total_macs += layers.back().macs;
  }
  const int n_layers = int(layers.size());
  struct Config { const BgemmKernel* k; int threads; };
  std::vector<Config> configs;
  const int max_threads = argc > 3 ? std::atoi(argv[3]) : 2;
  for (auto* k : kernels)
    for (int t = 1; t <= max_threads; ++t) configs.push_back({k, t});
  std::vector<std::vector<std::vector<double>>> us(
      configs.size(), std::vector<std::vector<double>>(n_layers + 1));
  // Each round runs every config's net twice and times the second pass (warm, as an
  // inference loop runs it): right after another config (a 2-thread one leaves half of
  // the outputs in the other core's cache, its pool threads still spinning) the first
  // pass measures the switch, not the kernel.
  for (int r = 0; r < rounds + 3; ++r)
    for (size_t c = 0; c < configs.size(); ++c)
      for (int pass = 0; pass < 2; ++pass) {
        double sum = 0;
        for (int i = 0; i < n_layers; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          RunBConv(layers[i].plan, configs[c].k, configs[c].threads, layers[i].input.data(),
                   layers[i].out.data());
          const double d = std::chrono::duration<double, std::micro>(
                               std::chrono::steady_clock::now() - t0).count();
          sum += d;
          if (r >= 3 && pass == 1) us[c][i].push_back(d);  // 3 warm-up rounds
        }
        if (r >= 3 && pass == 1) us[c][n_layers].push_back(sum);
      }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("%-24s", "layer (median us)");
  for (auto& c : configs) std::printf(" %9s/%d", c.k->name, c.threads);
  std::printf("\n");
  for (int i = 0; i <= n_layers; ++i) {
    std::printf("%-24s", i < n_layers ? net[only >= 0 ? only : i].name : "total");
    for (size_t c = 0; c < configs.size(); ++c) std::printf(" %11.1f", median(us[c][i]));
    std::printf("\n");
  }
  std::printf("%-24s", "binary GMAC/s");
  for (size_t c = 0; c < configs.size(); ++c)
    std::printf(" %11.0f", total_macs / median(us[c][n_layers]) / 1e3);
  std::printf("\n");
  return 0;
}

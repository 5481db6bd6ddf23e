// Standalone check of the optimized kernels against the oracle, with no
// Python or TFLite: cross-compile it and run it under qemu to exercise NEON.
//
//   kernel_check [iterations] [seed]
//
// 1. every binary-GEMM kernel this CPU runs == the generic kernel, random sizes;
// 2. whole binary convolutions (random options, shapes, groups, output types,
//    thread counts): every kernel == the direct reference convolution;
// 3. the options parser accepts a valid map and rejects every truncation and
//    many corruptions of it with a message (and never crashes);
// 4. BitliteDecodeWeights: k = 1..8 codes packed bit by bit decode exactly, and
//    malformed code streams, level tables, scales and options are refused;
// 5. bitlite's k-bit ops (kbit_check.h): every kernel's vector epilogue and quantize
//    at 1..4 threads == the plain C++ oracle, random configurations;
// 6. splits: dense and few-pixel convolutions over output channels, LceQuantize's
//    packing and LceBMaxPool2d over rows; 1..4 threads write the same bytes, and the
//    pool really runs them;
// 7. eval allocates nothing: a convolution run with a workspace reserved at prepare
//    makes no C++ allocation (operator new is counted), on every kernel and 1..4
//    threads; and when no thread can be started the convolutions still run (serially).
// Prints "N passed, M failed" and exits non-zero on any failure.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../src/bconv.h"
#include "../src/bgemm.h"
#include "../src/decode_weights.h"
#include "../src/flexbuffer.h"
#include "../src/kbit.h"
#include "../src/kbit_epilogue.h"
#include "../src/simple_ops.h"
#include "../src/thread_pool.h"
#include "flexbuffer_builder.h"

using namespace bitlite;

// Every C++ allocation of the process goes through these (replaceable global operator
// new); while g_counting is set they are counted, on any thread.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

void* CountedAlloc(size_t n, size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t n) { return CountedAlloc(n, 0); }
void* operator new[](size_t n) { return CountedAlloc(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return CountedAlloc(n, size_t(a)); }
void* operator new[](size_t n, std::align_val_t a) { return CountedAlloc(n, size_t(a)); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return CountedAlloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

// Every Expect is one real comparison; nothing is counted as passed without
// comparing an optimized result against an independent one.
int g_passed = 0, g_failed = 0;
std::map<std::string, int> g_per_kernel;  // comparisons per kernel name

void Expect(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    if (g_failed <= 20) std::printf("FAILED: %s\n", what.c_str());
  }
}

std::vector<const BgemmKernel*> OptimizedKernels() {
  std::vector<const BgemmKernel*> out;
  for (const char* name : {"generic", "avx2", "avx512", "neon"}) {
    const char* error = nullptr;
    const BgemmKernel* k = SelectKernel(name, &error);
    if (k != nullptr)
      out.push_back(k);
    else
      std::printf("skipped kernel %s: %s\n", name, error);
  }
  return out;
}

// The GEMM oracle: one 32-bit word at a time.
int32_t NaiveDot(const uint32_t* a, const uint32_t* b, int kwords) {
  int32_t s = 0;
  for (int k = 0; k < kwords; ++k) s += __builtin_popcount(a[k] ^ b[k]);
  return s;
}

// Odd sizes: pixels and filters not multiples of any tile (6 x 16, 4 x 4, 2 x 4),
// depths past the AVX2 byte-counter (31 steps) and NEON widening flush points.
void CheckGemm(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels, int iters) {
  constexpr int32_t kSentinel = -12345;
  for (int it = 0; it < iters; ++it) {
    const int n_pix = 1 + rng() % 50, n_out = 1 + rng() % 70;
    const int kwords = kKWordAlign * (1 + (it % 10 == 0 ? rng() % 700 : rng() % 40));
    const int ldc = n_out + rng() % 3;  // rows wider than n_out: nothing past n_out written
    std::vector<uint32_t> a(size_t(n_pix) * kwords), b(size_t(n_out) * kwords);
    for (auto& v : a) v = rng();
    for (auto& v : b) v = rng();
    std::vector<int32_t> want(size_t(n_pix) * ldc, kSentinel);
    for (int p = 0; p < n_pix; ++p)
      for (int o = 0; o < n_out; ++o)
        want[size_t(p) * ldc + o] = NaiveDot(&a[size_t(p) * kwords], &b[size_t(o) * kwords], kwords);
    std::vector<int32_t> thr(n_out);
    // Thresholds past both ends of [0, K] (kernels may clamp them), and on odd
    // iterations at some pixel's sum +-1, so that equal sums decide bits.
    for (int o = 0; o < n_out; ++o)
      thr[o] = it % 2 == 0 ? static_cast<int32_t>(rng() % (32 * kwords + 7)) - 3
                           : want[size_t(rng() % n_pix) * ldc + o] + static_cast<int32_t>(rng() % 3) - 1;
    const std::string shape = " pix=" + std::to_string(n_pix) + " out=" + std::to_string(n_out) +
                              " kwords=" + std::to_string(kwords);
    for (const BgemmKernel* k : kernels) {
      std::vector<int32_t> got(want.size(), kSentinel);
      k->run(a.data(), n_pix, b.data(), n_out, kwords, got.data(), ldc);
      Expect(got == want, std::string("gemm ") + k->name + shape);
      ++g_per_kernel[k->name];
      if (k->run_blocked == nullptr) continue;
      std::vector<uint32_t> packed(NibbleFilterWords(n_out, kwords) + 16);
      // Pack at a 64-byte boundary, as the plan does, in the kernel's layout.
      uint32_t* base = packed.data();
      while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;
      (k->nibbles ? PackFiltersNibbles16 : PackFiltersBlocked16)(b.data(), n_out, kwords, base);
      std::vector<uint32_t> inter(size_t((n_pix + 3) / 4) * 4 * kwords);
      const uint32_t* pa = a.data();
      if (k->interleave4) {
        InterleavePatches4(a.data(), n_pix, kwords, inter.data());
        pa = inter.data();
      }
      std::fill(got.begin(), got.end(), kSentinel);
      k->run_blocked(pa, n_pix, base, n_out, kwords, got.data(), ldc, nullptr);
      Expect(got == want, std::string("gemm blocked ") + k->name + shape);
      ++g_per_kernel[k->name];
      if (!k->fuses) continue;
      // Fused epilogue: 16 bits per block, lanes past n_out zero, nothing else written.
      const int halves = (n_out + 15) / 16, stride = halves + 1;
      std::vector<uint16_t> bits(size_t(n_pix) * stride, 0xBEEF), want_bits(bits.size(), 0xBEEF);
      for (int p = 0; p < n_pix; ++p)
        for (int h = 0; h < halves; ++h) {
          uint16_t w = 0;
          for (int j = 0; j < 16 && h * 16 + j < n_out; ++j)
            w |= uint16_t(want[size_t(p) * ldc + h * 16 + j] > thr[h * 16 + j]) << j;
          want_bits[size_t(p) * stride + h] = w;
        }
      BlockedEpilogue ep;
      ep.thresholds = thr.data();
      ep.bits = bits.data();
      ep.bits_stride = stride;
      std::fill(got.begin(), got.end(), kSentinel);
      k->run_blocked(pa, n_pix, base, n_out, kwords, got.data(), ldc, &ep);
      Expect(bits == want_bits, std::string("gemm fused bits ") + k->name + shape);
      Expect(std::all_of(got.begin(), got.end(), [](int32_t v) { return v == kSentinel; }),
             std::string("gemm fused writes no accumulators ") + k->name + shape);
      // Fused float transform: clamp(2 * accum) * mul + bias, two roundings.
      std::uniform_real_distribution<float> u(-2.0f, 2.0f);
      std::vector<float> mul(n_out), bias(n_out);
      for (int o = 0; o < n_out; ++o) mul[o] = u(rng), bias[o] = 100 * u(rng);
      const int32_t lo = static_cast<int32_t>(rng() % (32 * kwords)), hi = lo + rng() % 5000;
      const int fstride = n_out + 1;
      std::vector<float> fout(size_t(n_pix) * fstride, -7.0f), fwant(fout.size(), -7.0f);
      for (int p = 0; p < n_pix; ++p)
        for (int o = 0; o < n_out; ++o) {
          const int32_t x = std::max(std::min(want[size_t(p) * ldc + o] * 2, hi), lo);
          fwant[size_t(p) * fstride + o] = static_cast<float>(x) * mul[o] + bias[o];
        }
      BlockedEpilogue fe;
      fe.mul = mul.data();
      fe.bias = bias.data();
      fe.clamp_lo = lo;
      fe.clamp_hi = hi;
      fe.out = fout.data();
      fe.out_stride = fstride;
      k->run_blocked(pa, n_pix, base, n_out, kwords, got.data(), ldc, &fe);
      Expect(std::memcmp(fout.data(), fwant.data(), fout.size() * sizeof(float)) == 0,
             std::string("gemm fused float ") + k->name + shape);
      g_per_kernel[k->name] += 3;
    }
  }
}

struct ConvStats {
  int run = 0;
  std::map<std::string, int> refused;  // planner message -> count
};

// Random LceBconv2d configurations; each kernel at 1..4 threads (forced to split
// even tiny layers), fused and unfused, must write exactly the reference's bytes.
void CheckConv(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels, int iters,
               ConvStats* stats) {
  // 128 and 256: whole 128-bit chunks per tap (im2col written interleaved in place).
  static const int kCins[] = {1, 7, 31, 32, 33, 64, 96, 128, 200, 256};
  for (int it = 0; it < iters; ++it) {
    BConvOptions o;
    o.padding = rng() % 2;
    o.pad_values = rng() % 2;
    o.stride_height = 1 + rng() % 3;
    o.stride_width = 1 + rng() % 3;
    o.dilation_height = 1 + rng() % 2;
    o.dilation_width = 1 + rng() % 2;
    o.activation = rng() % 4;
    int groups = 1;
    if (rng() % 4 == 0) {
      groups = 1 + rng() % 3;
      o.channels_in = 32 * groups * (1 + rng() % 2);
    } else {
      o.channels_in = kCins[rng() % 10];
    }
    const int in_words = (o.channels_in + 31) / 32;
    const int fh = 1 + rng() % 3, fw = 1 + rng() % 3;
    const int out_c = groups * (1 + rng() % (rng() % 3 == 0 ? 90 : 40));
    const int in_dims[4] = {1 + int(rng() % 2), 3 + int(rng() % 12), 3 + int(rng() % 12),
                            in_words};
    const int filter_dims[4] = {out_c, fh, fw, in_words / groups};
    const OutputType type = static_cast<OutputType>(rng() % 4);  // kInt32 too
    if (type == OutputType::kInt32) o.pad_values = 1, o.activation = 0;  // its only options
    std::vector<int32_t> filter(size_t(out_c) * fh * fw * (in_words / groups));
    for (auto& v : filter) v = static_cast<int32_t>(rng());
    std::vector<float> mul(out_c), bias(out_c);
    std::vector<int32_t> thr(out_c);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    const int depth = fh * fw * o.channels_in / groups;
    for (int c = 0; c < out_c; ++c) {
      mul[c] = u(rng);
      bias[c] = 10 * u(rng);
      thr[c] = static_cast<int32_t>(rng() % (depth + 1));
    }
    BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                   type, 0.05f + 0.1f * (rng() % 5), static_cast<int32_t>(rng() % 21) - 10};
    BConvPlan plan;
    const std::string error = PlanBConv(o, t, &plan);
    if (!error.empty()) {  // counted and listed by reason, never silently dropped
      ++stats->refused[error.substr(0, error.find(" (got"))];
      continue;
    }
    ++stats->run;
    std::vector<int32_t> input(size_t(in_dims[0]) * in_dims[1] * in_dims[2] * in_words);
    const uint32_t tail_mask =
        o.channels_in % 32 ? (uint32_t(1) << (o.channels_in % 32)) - 1 : ~uint32_t(0);
    for (size_t i = 0; i < input.size(); ++i) {
      uint32_t v = rng();
      if (int(i % in_words) == in_words - 1) v &= tail_mask;  // LceQuantize pads with 0
      input[i] = static_cast<int32_t>(v);
    }
    int dims[4];
    BConvOutputDims(plan, dims);
    const size_t n = size_t(dims[0]) * dims[1] * dims[2] * dims[3];
    std::vector<int32_t> want(n), got(n);  // 4-byte slots hold float, int8 or words
    const BgemmKernel reference = {"reference", nullptr};
    Expect(RunBConv(plan, &reference, 1, input.data(), want.data()), "reference runs");
    const size_t bytes = type == OutputType::kInt8 ? n : n * 4;
    const std::string what = " cin=" + std::to_string(o.channels_in) + " cout=" +
                             std::to_string(out_c) + " groups=" + std::to_string(groups) +
                             " type=" + std::to_string(int(type)) + " padding=" +
                             std::to_string(o.padding) + " pad_values=" +
                             std::to_string(o.pad_values);
    for (const BgemmKernel* k : kernels) {
      BConvPlan own = plan;  // as prepare keeps it for k: one blocked filter copy
      KeepFiltersFor(k, &own);
      for (int threads = 1; threads <= 4; ++threads)
        for (bool fused : {true, false}) {
          if (!fused && !k->fuses) continue;  // no fused path to compare against
          std::fill(got.begin(), got.end(), 0x55555555);
          const bool ok = fused ? RunBConv(own, k, threads, input.data(), got.data())
                                : RunBConvUnfused(own, k, threads, input.data(), got.data());
          Expect(ok && std::memcmp(got.data(), want.data(), bytes) == 0,
                 std::string("bconv ") + k->name + " threads=" + std::to_string(threads) +
                     (fused ? " fused" : " unfused") + what);
          ++g_per_kernel[k->name];
        }
    }
  }
}

// LceQuantize's float bitpacking (vectorized on x86) against bit-by-bit x < 0,
// including -0.0, NaN of both signs, infinities and tiny values.
void CheckBitpackFloat(std::mt19937& rng, int iters) {
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 1e-45f, -1e-45f};
  for (int it = 0; it < iters; ++it) {
    const long rows = 1 + rng() % 40;
    const int channels = it % 2 ? 32 * (1 + rng() % 20) : 1 + rng() % 100;
    std::vector<float> x(size_t(rows) * channels);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : x) v = rng() % 8 == 0 ? specials[rng() % 8] : u(rng);
    const int words = (channels + 31) / 32;
    // One sentinel word past the end: nothing may be written there.
    std::vector<int32_t> got(size_t(rows) * words + 1, 0x5a5a5a5a), want(got.size(), 0);
    want.back() = 0x5a5a5a5a;
    for (long r = 0; r < rows; ++r)
      for (int c = 0; c < channels; ++c)
        if (x[size_t(r) * channels + c] < 0.0f)
          want[size_t(r) * words + c / 32] |= int32_t(1u << (c % 32));
    BitpackFloat(x.data(), rows, channels, got.data());
    Expect(got == want, "bitpack float rows=" + std::to_string(rows) + " channels=" +
                            std::to_string(channels));
  }
}

// Plans a convolution that the check expects to be valid; returns its output's size
// (elements).
size_t PlanOutput(const BConvOptions& o, const BConvTensors& t, BConvPlan* plan,
                  const char* what) {
  Expect(PlanBConv(o, t, plan).empty(), what);
  int dims[4];
  BConvOutputDims(*plan, dims);
  return size_t(dims[0]) * dims[1] * dims[2] * dims[3];
}

// Dense layers (1 pixel) and few-pixel convolutions are split over output channels:
// filters not a multiple of 16 or 32, K up to 8192 bits, every output type; each kernel
// at 1..4 threads writes the reference's bytes, and at 2+ threads the pool really ran
// the channel split. Then the default thresholds: VGG-8's 8192->1024 dense (~35 us on
// AVX-512) is worth 2 threads on every kernel, a 10-filter one is not.
void CheckDenseSplit(std::mt19937& rng, const std::vector<const BgemmKernel*>& kernels) {
  struct Case { int hw, k, cin, cout; };  // k x k VALID filter: (hw - k + 1)^2 pixels
  static const Case kCases[] = {{1, 1, 1024, 1000}, {4, 4, 512, 33}, {4, 4, 96, 17},
                                {1, 1, 200, 10},    {2, 1, 256, 100}, {3, 2, 64, 50},
                                {5, 4, 32, 70}};
  for (const Case& cs : kCases)
    for (int type_i = 0; type_i < 3; ++type_i) {
      const OutputType type = static_cast<OutputType>(type_i);
      BConvOptions o;
      o.channels_in = cs.cin;
      o.padding = 1;
      const int words = (cs.cin + 31) / 32;
      const int in_dims[4] = {1, cs.hw, cs.hw, words}, filter_dims[4] = {cs.cout, cs.k, cs.k, words};
      std::vector<int32_t> filter(size_t(cs.cout) * cs.k * cs.k * words), thr(cs.cout);
      std::vector<float> mul(cs.cout), bias(cs.cout);
      for (auto& v : filter) v = static_cast<int32_t>(rng());
      for (int c = 0; c < cs.cout; ++c) {
        thr[c] = static_cast<int32_t>(rng() % (cs.k * cs.k * cs.cin + 1));
        mul[c] = 0.01f * static_cast<float>(int(rng() % 200) - 100);
        bias[c] = static_cast<float>(int(rng() % 40) - 20);
      }
      std::vector<int32_t> input(size_t(cs.hw) * cs.hw * words);
      for (auto& v : input) v = static_cast<int32_t>(rng());
      BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                     type, 0.5f, 3};
      BConvPlan plan;
      const size_t n = PlanOutput(o, t, &plan, "dense plan");
      const size_t bytes = type == OutputType::kInt8 ? n : n * 4;
      std::vector<int32_t> want(n), got(n);
      const BgemmKernel reference = {"reference", nullptr};
      RunBConv(plan, &reference, 1, input.data(), want.data());
      const int side = cs.hw - cs.k + 1;  // VALID
      const std::string what = " pixels=" + std::to_string(side * side) + " cin=" +
                               std::to_string(cs.cin) + " cout=" + std::to_string(cs.cout) +
                               " type=" + std::to_string(type_i);
      for (const BgemmKernel* k : kernels) {
        BConvPlan own = plan;
        KeepFiltersFor(k, &own);
        for (int threads = 1; threads <= 4; ++threads) {
          const BConvSplit split = SplitBConv(own, k, threads);
          const long jobs = PoolJobsForTesting();
          std::fill(got.begin(), got.end(), 0x55555555);
          const bool ok = RunBConv(own, k, threads, input.data(), got.data());
          Expect(ok && std::memcmp(got.data(), want.data(), bytes) == 0,
                 std::string("dense split ") + k->name + " threads=" + std::to_string(threads) +
                     what);
          if (threads > 1 && cs.cout > 32)  // more than one 32-channel block: split
            Expect(split.threads == threads && split.ch_tasks > 1 &&
                       PoolJobsForTesting() == jobs + 1,
                   std::string("dense split runs on the pool ") + k->name + what);
          ++g_per_kernel[k->name];
        }
      }
    }
  // The default thresholds (per kernel): VGG-8's dense layer as the export writes it.
  SetMinMacsPerThread(-1);
  for (int cout : {1024, 10}) {
    BConvOptions o;
    o.channels_in = 512;
    o.padding = 1;
    const int in_dims[4] = {1, 4, 4, 16}, filter_dims[4] = {cout, 4, 4, 16};
    std::vector<int32_t> filter(size_t(cout) * 16 * 16, 0x12345), thr(cout, 4096);
    BConvTensors t{in_dims, filter_dims, filter.data(), nullptr, nullptr, thr.data(),
                   OutputType::kBitpacked, 1.0f, 0};
    BConvPlan plan;
    Expect(PlanBConv(o, t, &plan).empty(), "vgg8 dense plan");
    for (const BgemmKernel* k : kernels) {
      const BConvSplit split = SplitBConv(plan, k, 2);
      Expect(cout == 1024 ? split.threads == 2 && split.ch_tasks >= 2 && split.pix_tasks == 1
                          : split.threads == 1,
             std::string("vgg8 dense ") + std::to_string(cout) + " filters on " + k->name +
                 ": " + std::to_string(split.threads) + " threads");
    }
  }
  SetMinMacsPerThread(0);
}

// LceQuantize's packing of every input type and LceBMaxPool2d split over 1..4 threads:
// odd channel counts and shapes, tensors large enough to be split (the pool runs them:
// checked), each thread count writes exactly the bit-by-bit expectation and nothing past
// the end.
void CheckThreadedSimpleOps(std::mt19937& rng) {
  for (int channels : {1, 33, 100, 128, 1000}) {
    const long rows = 4 * 32768 / channels + 3 + rng() % 5;  // enough for 4 threads
    const int words = (channels + 31) / 32;
    std::vector<float> xf(size_t(rows) * channels);
    std::vector<int8_t> xi(xf.size());
    std::vector<uint8_t> xb(xf.size());
    for (size_t i = 0; i < xf.size(); ++i) {
      xf[i] = static_cast<float>(int(rng() % 2001) - 1000);
      xi[i] = static_cast<int8_t>(rng());
      xb[i] = static_cast<uint8_t>(rng() % 3 == 0 ? 0 : rng() % 4);  // any byte: !x
    }
    std::vector<int32_t> want_f(size_t(rows) * words + 1, 0), want_i = want_f, want_b = want_f;
    for (long r = 0; r < rows; ++r)
      for (int c = 0; c < channels; ++c) {
        const size_t i = size_t(r) * channels + c, w = size_t(r) * words + c / 32;
        const int32_t bit = int32_t(1u << (c % 32));
        if (xf[i] < 0.0f) want_f[w] |= bit;
        if (xi[i] < -5) want_i[w] |= bit;
        if (xb[i] == 0) want_b[w] |= bit;
      }
    for (auto* w : {&want_f, &want_i, &want_b}) w->back() = 0x5a5a5a5a;  // sentinel
    for (int threads = 1; threads <= 4; ++threads) {
      std::vector<int32_t> got(want_f.size(), 0x5a5a5a5a);
      const std::string what =
          " channels=" + std::to_string(channels) + " threads=" + std::to_string(threads);
      const long jobs = PoolJobsForTesting();
      BitpackFloat(xf.data(), rows, channels, got.data(), threads);
      Expect(got == want_f, "threaded bitpack float" + what);
      Expect(PoolJobsForTesting() == jobs + (threads > 1), "bitpack float on the pool" + what);
      std::fill(got.begin(), got.end(), 0x5a5a5a5a);
      BitpackInt8(xi.data(), rows, channels, -5, got.data(), threads);
      Expect(got == want_i, "threaded bitpack int8" + what);
      std::fill(got.begin(), got.end(), 0x5a5a5a5a);
      BitpackBool(reinterpret_cast<const bool*>(xb.data()), rows, channels, got.data(), threads);
      Expect(got == want_b, "threaded bitpack bool" + what);
    }
  }
  struct Pool { int n, h, w, words, fh, fw, stride, padding; };
  static const Pool kPools[] = {{1, 32, 32, 4, 2, 2, 2, 1}, {2, 33, 31, 3, 3, 3, 2, 0},
                                {1, 17, 40, 5, 2, 3, 1, 0}, {3, 9, 9, 1, 3, 3, 3, 1}};
  for (const Pool& pl : kPools) {
    MaxPoolOptions o;
    o.filter_height = pl.fh, o.filter_width = pl.fw;
    o.stride_height = o.stride_width = pl.stride;
    o.padding = pl.padding;
    const int in_dims[4] = {pl.n, pl.h, pl.w, pl.words};
    MaxPoolShape s;
    Expect(PlanMaxPool(o, in_dims, &s).empty(), "pool plan");
    std::vector<int32_t> in(size_t(pl.n) * pl.h * pl.w * pl.words);
    for (auto& v : in) v = static_cast<int32_t>(rng() | rng());  // mostly set bits
    const size_t n = size_t(s.batch) * s.out_h * s.out_w * s.words;
    std::vector<int32_t> want(n + 1, 0x5a5a5a5a);
    for (int b = 0; b < s.batch; ++b)  // AND over the window's taps inside the image
      for (int oy = 0; oy < s.out_h; ++oy)
        for (int ox = 0; ox < s.out_w; ++ox)
          for (int w = 0; w < s.words; ++w) {
            int32_t v = ~int32_t(0);
            for (int fy = 0; fy < pl.fh; ++fy)
              for (int fx = 0; fx < pl.fw; ++fx) {
                const int y = oy * pl.stride - s.pad_top + fy, x = ox * pl.stride - s.pad_left + fx;
                if (y >= 0 && y < pl.h && x >= 0 && x < pl.w)
                  v &= in[((size_t(b) * pl.h + y) * pl.w + x) * pl.words + w];
              }
            want[((size_t(b) * s.out_h + oy) * s.out_w + ox) * s.words + w] = v;
          }
    const bool big = double(s.batch) * s.out_h * s.out_w * s.words * pl.fh * pl.fw >= 4 * 2048;
    for (int threads = 1; threads <= 4; ++threads) {
      std::vector<int32_t> got(n + 1, 0x5a5a5a5a);
      const long jobs = PoolJobsForTesting();
      BMaxPool(o, s, in.data(), got.data(), threads);
      const std::string what = " " + std::to_string(pl.h) + "x" + std::to_string(pl.w) +
                               " threads=" + std::to_string(threads);
      Expect(got == want, "threaded bmaxpool" + what);
      if (big) Expect(PoolJobsForTesting() == jobs + (threads > 1), "bmaxpool on the pool" + what);
    }
  }
}

// Several interpreters invoking at once share the one thread pool: a caller
// that finds it busy runs its convolution alone. Every result must still be
// the reference's bytes (run under TSan by run_sanitized.sh).
void CheckConcurrentCallers(const std::vector<const BgemmKernel*>& kernels) {
  BConvOptions o;
  o.channels_in = 96;
  o.pad_values = 1;
  const int in_dims[4] = {1, 14, 14, 3}, filter_dims[4] = {40, 3, 3, 3};
  std::mt19937 rng(7);
  std::vector<int32_t> filter(40 * 9 * 3), input(14 * 14 * 3), thr(40, 400);
  for (auto& v : filter) v = static_cast<int32_t>(rng());
  for (auto& v : input) v = static_cast<int32_t>(rng());
  std::vector<float> mul(40, 0.5f), bias(40, -3.0f);
  for (OutputType type : {OutputType::kFloat32, OutputType::kBitpacked}) {
    BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                   type, 1.0f, 0};
    BConvPlan plan;
    const size_t n = PlanOutput(o, t, &plan, "concurrent-callers plan");
    std::vector<int32_t> want(n);
    const BgemmKernel reference = {"reference", nullptr};
    RunBConv(plan, &reference, 1, input.data(), want.data());
    for (const BgemmKernel* k : kernels) {
      constexpr int kCallers = 4, kRepeats = 25;
      std::vector<std::vector<int32_t>> got(kCallers, std::vector<int32_t>(n));
      std::vector<int> same(kCallers, 0);
      std::vector<std::thread> callers;
      for (int c = 0; c < kCallers; ++c)
        callers.emplace_back([&, c] {
          for (int r = 0; r < kRepeats; ++r) {
            std::fill(got[c].begin(), got[c].end(), 0x55555555);
            same[c] += RunBConv(plan, k, 2 + c % 3, input.data(), got[c].data()) &&
                       got[c] == want;
          }
        });
      for (auto& th : callers) th.join();
      for (int c = 0; c < kCallers; ++c) {
        Expect(same[c] == kRepeats, std::string("concurrent callers ") + k->name + " caller " +
                                        std::to_string(c));
        ++g_per_kernel[k->name];
      }
    }
  }
}

// One SAME zero-padded convolution with its reference output, for the checks below.
struct FixedConv {
  BConvPlan plan;
  std::vector<int32_t> input, want;
};

FixedConv MakeFixedConv(OutputType type, int words = 3, int out_c = 40) {
  BConvOptions o;
  o.channels_in = 32 * words;
  o.pad_values = 0;
  const int in_dims[4] = {1, 9, 7, words}, filter_dims[4] = {out_c, 3, 3, words};
  std::mt19937 rng(11);
  std::vector<int32_t> filter(size_t(out_c) * 9 * words), thr(out_c, 400);
  for (auto& v : filter) v = static_cast<int32_t>(rng());
  std::vector<float> mul(out_c, 0.5f), bias(out_c, -3.0f);
  FixedConv c;
  c.input.resize(size_t(9) * 7 * words);
  for (auto& v : c.input) v = static_cast<int32_t>(rng());
  BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(), thr.data(),
                 type, 1.0f, 0};
  c.want.resize(PlanOutput(o, t, &c.plan, "fixed conv plan"));
  const BgemmKernel reference = {"reference", nullptr};
  RunBConv(c.plan, &reference, 1, c.input.data(), c.want.data());
  return c;
}

// Run first, before anything starts the pool's workers: with thread creation failing
// (std::system_error, as on a system out of threads) every multi-threaded convolution
// still writes the reference's bytes, on the calling thread.
void CheckThreadStartFailure(const std::vector<const BgemmKernel*>& kernels) {
  SetThreadStartFailsForTesting(true);
  const FixedConv c = MakeFixedConv(OutputType::kFloat32);
  for (const BgemmKernel* k : kernels) {
    std::vector<int32_t> got(c.want.size(), 0x55555555);
    const bool ok = RunBConv(c.plan, k, 4, c.input.data(), got.data());
    Expect(ok && got == c.want, std::string("no threads can start: ") + k->name);
    BConvWorkspace ws;
    Expect(ws.Reserve(c.plan, k, 4), std::string("workspace without threads ") + k->name);
    std::fill(got.begin(), got.end(), 0x55555555);
    Expect(RunBConv(c.plan, k, 4, c.input.data(), got.data(), &ws) && got == c.want,
           std::string("no threads can start, with a workspace: ") + k->name);
  }
  Expect(!ReserveThreads(3), "ReserveThreads reports that no worker started");
  SetThreadStartFailsForTesting(false);
}

// Eval allocates nothing: with the workspace reserved (as prepare does), a run makes no
// allocation on any thread, for every kernel, the reference and 1..4 threads. The layer
// is larger than any before it (K = 288 words, 300 filters), so per-thread scratch
// left by earlier checks could not serve it: a run that used it would allocate.
void CheckNoAllocationAtRun(const std::vector<const BgemmKernel*>& kernels) {
  std::vector<const BgemmKernel*> all = kernels;
  static const BgemmKernel reference = {"reference", nullptr};
  all.push_back(&reference);
  for (OutputType type : {OutputType::kFloat32, OutputType::kInt8, OutputType::kBitpacked}) {
    const FixedConv c = MakeFixedConv(type, 32, 300);
    for (const BgemmKernel* k : all) {
      BConvWorkspace ws;
      Expect(ws.Reserve(c.plan, k, 4), std::string("workspace ") + k->name);
      for (int threads = 1; threads <= 4; ++threads) {
        std::vector<int32_t> got(c.want.size(), 0x55555555);
        g_allocations.store(0);
        g_counting.store(true);
        const bool ok = RunBConv(c.plan, k, threads, c.input.data(), got.data(), &ws);
        g_counting.store(false);
        const size_t bytes = type == OutputType::kInt8 ? got.size() : got.size() * 4;
        Expect(ok && std::memcmp(got.data(), c.want.data(), bytes) == 0,
               std::string("workspace run matches the reference: ") + k->name);
        Expect(g_allocations.load() == 0,
               std::string("run allocates nothing: ") + k->name + " threads=" +
                   std::to_string(threads) + " type=" + std::to_string(int(type)) + " (" +
                   std::to_string(g_allocations.load()) + " allocations)");
      }
    }
  }
}

void CheckParser(std::mt19937& rng) {
  const std::vector<std::pair<std::string, int64_t>> entries = {
      {"channels_in", 64},  {"dilation_height_factor", 1}, {"dilation_width_factor", 2},
      {"fused_activation_function", 1}, {"pad_values", 1}, {"padding", 0},
      {"stride_height", 2}, {"stride_width", 1}};
  const std::vector<uint8_t> valid = BuildIntMap(entries, 1);
  BConvOptions o;
  Expect(ParseBConvOptions(valid.data(), valid.size(), &o).empty() && o.channels_in == 64 &&
             o.dilation_width == 2 && o.stride_height == 2 && o.activation == 1,
         "valid options parse");
  for (int width : {2, 4, 8}) {
    const std::vector<uint8_t> wide = BuildIntMap(entries, width);
    Expect(ParseBConvOptions(wide.data(), wide.size(), &o).empty() && o.channels_in == 64,
           "valid options parse at width " + std::to_string(width));
  }
  for (size_t len = 0; len < valid.size(); ++len) {
    std::vector<uint8_t> cut(valid.begin() + (valid.size() - len), valid.end());
    Expect(!ParseBConvOptions(cut.data(), cut.size(), &o).empty(), "truncated options refused");
  }
  auto missing = entries;
  missing.erase(missing.begin() + 4);
  const std::vector<uint8_t> no_pad = BuildIntMap(missing, 1);
  Expect(ParseBConvOptions(no_pad.data(), no_pad.size(), &o).find("pad_values") !=
             std::string::npos,
         "missing key named in the message");
  // Corruptions: not compared (any answer is fine), only run, so that the
  // ASan/UBSan build checks the parser's reads; reported apart from the passes.
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bad = valid;
    for (int j = 0, n = 1 + rng() % 4; j < n; ++j) bad[rng() % bad.size()] = rng();
    accepted += ParseBConvOptions(bad.data(), bad.size(), &o).empty();
  }
  std::printf("parser: 20000 corrupted option maps ran without a crash (%d accepted)\n",
              accepted);
}

// Packs codes bit by bit (independently of CodeAt): code i at bits [i*k, (i+1)*k).
std::vector<uint8_t> PackBits(const std::vector<uint32_t>& codes, int bits) {
  std::vector<uint8_t> out(PackedBytes(codes.size(), bits), 0);
  for (size_t i = 0; i < codes.size(); ++i)
    for (int b = 0; b < bits; ++b)
      if ((codes[i] >> b) & 1u) out[(i * bits + b) / 8] |= uint8_t(1u << ((i * bits + b) % 8));
  return out;
}

void CheckDecode(std::mt19937& rng, int iters) {
  int decoded = 0;
  for (int it = 0; it < iters; ++it) {
    const int bits = 1 + it % 8;
    const int dims[2] = {1 + int(rng() % 5), 1 + int(rng() % 60)};
    const int axis = int(rng() % 2);
    const long n = long(dims[0]) * dims[1];
    const long levels_n = 1 + long(rng() % (1u << bits));
    std::vector<uint32_t> codes(n);
    for (auto& c : codes) c = rng() % levels_n;
    std::vector<float> levels(levels_n), scales(dims[axis]);
    for (auto& l : levels) l = float(int(rng() % 255) - 127) / 8.0f;
    for (auto& x : scales) x = 0.001f + float(rng() % 1000) / 333.0f;
    const std::vector<uint8_t> packed = PackBits(codes, bits);
    DecodeOptions o;
    o.bits = bits;
    o.axis = axis;
    DecodePlan plan;
    const std::string e = PlanDecode(o, dims, 2, packed.data(), packed.size(), levels_n,
                                     long(scales.size()), &plan);
    Expect(e.empty(), "valid packed weights accepted: " + e);
    if (!e.empty()) continue;
    std::vector<float> out(n);
    DecodeWeights(plan, packed.data(), levels.data(), scales.data(), out.data());
    bool same = true;
    for (long i = 0; i < n; ++i) {
      const long c = axis == 0 ? i / dims[1] : i % dims[1];
      const float want = scales[c] * levels[codes[i]];
      same = same && std::memcmp(&want, &out[i], sizeof(float)) == 0;
    }
    Expect(same, "k=" + std::to_string(bits) + " codes decode exactly");
    ++decoded;
    // Every malformation is refused with a message before anything is decoded.
    Expect(!PlanDecode(o, dims, 2, packed.data(), packed.size() - 1, levels_n,
                       long(scales.size()), &plan).empty(), "short code stream refused");
    std::vector<uint8_t> longer = packed;
    longer.push_back(0);
    Expect(!PlanDecode(o, dims, 2, longer.data(), longer.size(), levels_n,
                       long(scales.size()), &plan).empty(), "long code stream refused");
    Expect(!PlanDecode(o, dims, 2, packed.data(), packed.size(), (1L << bits) + 1,
                       long(scales.size()), &plan).empty(), "too many levels refused");
    Expect(!PlanDecode(o, dims, 2, packed.data(), packed.size(), levels_n,
                       long(scales.size()) + 1, &plan).empty(), "scale count refused");
    if (levels_n < (1L << bits)) {
      std::vector<uint32_t> bad = codes;
      bad[rng() % n] = uint32_t(levels_n);
      const std::vector<uint8_t> bad_packed = PackBits(bad, bits);
      Expect(PlanDecode(o, dims, 2, bad_packed.data(), bad_packed.size(), levels_n,
                        long(scales.size()), &plan).find("is not below") != std::string::npos,
             "code >= levels refused");
    }
    o.axis = 2;
    Expect(!PlanDecode(o, dims, 2, packed.data(), packed.size(), levels_n,
                       long(scales.size()), &plan).empty(), "axis outside the rank refused");
  }
  const std::vector<uint8_t> valid = BuildIntMap({{"axis", 3}, {"bits", 2}}, 1);
  DecodeOptions o;
  Expect(ParseDecodeOptions(valid.data(), valid.size(), &o).empty() && o.axis == 3 &&
             o.bits == 2, "decode options parse");
  const std::vector<uint8_t> nine = BuildIntMap({{"axis", 0}, {"bits", 9}}, 1);
  Expect(!ParseDecodeOptions(nine.data(), nine.size(), &o).empty(), "bits 9 refused");
  for (size_t len = 0; len < valid.size(); ++len) {
    std::vector<uint8_t> cut(valid.begin() + (valid.size() - len), valid.end());
    Expect(!ParseDecodeOptions(cut.data(), cut.size(), &o).empty(), "truncated decode options");
  }
  for (int i = 0; i < 5000; ++i) {  // corruptions: must not crash (ASan run checks reads)
    std::vector<uint8_t> bad = valid;
    for (int j = 0, n = 1 + rng() % 3; j < n; ++j) bad[rng() % bad.size()] = rng();
    ParseDecodeOptions(bad.data(), bad.size(), &o);
  }
  std::printf("decode: %d packed tensors (k = 1..8) checked\n", decoded);
}

#include "kbit_check.h"

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 200;
  std::mt19937 rng(argc > 2 ? std::atoi(argv[2]) : 12345);
  const auto kernels = OptimizedKernels();
  std::printf("kernels:");
  for (const BgemmKernel* k : kernels) std::printf(" %s", k->name);
  std::printf(" (best: %s)\n", SelectedKernelName());
  CheckThreadStartFailure(kernels);
  CheckGemm(rng, kernels, iters);
  SetMinMacsPerThread(0);  // split even the smallest convolution over the threads
  ConvStats stats;
  CheckConv(rng, kernels, iters, &stats);
  CheckDenseSplit(rng, kernels);
  CheckThreadedSimpleOps(rng);
  CheckConcurrentCallers(kernels);
  CheckNoAllocationAtRun(kernels);
  CheckBitpackFloat(rng, iters);
  CheckParser(rng);
  CheckDecode(rng, iters);
  CheckKbit(rng, kernels, iters);
  int refused = 0;
  for (const auto& r : stats.refused) refused += r.second;
  std::printf("conv: %d configurations compared, %d refused by the planner:\n", stats.run,
              refused);
  for (const auto& r : stats.refused) std::printf("  %5d x %s\n", r.second, r.first.c_str());
  for (const BgemmKernel* k : kernels) {
    std::printf("  %s: %d comparisons\n", k->name, g_per_kernel[k->name]);
    Expect(g_per_kernel[k->name] > 0, std::string("kernel ") + k->name + " was compared");
  }
  Expect(stats.run > refused, "most random configurations are runnable");
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

// Arithmetic ceilings of one core: MACs per second of the instruction sequences
// binary and int8 kernels are built from, with operands in registers (no loads,
// no stores, no dependency but the accumulators'), so only the ALU ports bound
// them. A kernel's MAC/s over its ceiling is how near the machine's limit it is;
// the ratio of two ceilings bounds how much faster one kind of kernel can be than
// another on the same MAC count.
//
//   binary avx512  VPXORQ + VPOPCNTQ + VPADDQ          512 binary MACs per 3 uops
//   binary avx2    per 128-bit chunk of 2 filters: 2 VPXOR (nibble planes),
//                  2 VPSHUFB, 2 VPADDB                  256 binary MACs per 6 uops
//                  (bgemm_avx2_1x16.cc's step)
//   int8 vnni512   VPDPBUSD zmm                         64 int8 MACs per uop
//   int8 avx2      VPMADDUBSW + VPMADDWD + VPADDD        32 int8 MACs per 3 uops
//                  (int8 GEMMs on CPUs without VNNI)
//   int8 amx       TDPBUSD on 16x64-byte tiles           16384 int8 MACs per instruction
//                  (Sapphire Rapids and later Xeons: a matrix unit beside the vector
//                  ports; LiteRT's XNNPACK runs int8 GEMMs on it, binary ops have none)
//   float avx512   VFMADD231PS zmm                      16 float MACs per uop
//   float avx2     VFMADD231PS ymm                       8 float MACs per uop
//
// Usage: peak_bench [rounds]. Prints "name GMAC/s" per line (median of rounds,
// interleaved round by round), "unsupported" where the CPU lacks the ISA.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

constexpr long kSteps = 1 << 18;  // loop iterations per timing

// 16 accumulators in zmm16-31 inside one asm loop: VPDPBUSD and VFMADD have 4-5
// cycles of latency and two ports on some cores, so fewer independent chains would
// measure latency, not ports (and an asm statement takes at most 30 operands).
#define ACC16_CLOBBERS                                                                  \
  "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", \
      "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
#define X16(op)                                                                              \
  op "16\n" op "17\n" op "18\n" op "19\n" op "20\n" op "21\n" op "22\n" op "23\n" op "24\n" \
      op "25\n" op "26\n" op "27\n" op "28\n" op "29\n" op "30\n" op "31\n"
// `op w, x, zmmN` into the 16 accumulators, kSteps times (they start at zero).
#define ZMM16_LOOP(op, w_value, x_value)                                                    \
  do {                                                                                      \
    const auto w = (w_value);                                                               \
    const auto x = (x_value);                                                               \
    long n = kSteps;                                                                        \
    asm volatile(X16("vpxorq %%zmm0, %%zmm0, %%zmm") "1:\n" X16(op " %[w], %[x], %%zmm")   \
                 "dec %[n]\n jnz 1b\n"                                                    \
                 : [n] "+r"(n)                                                              \
                 : [w] "v"(w), [x] "v"(x)                                                   \
                 : "cc", ACC16_CLOBBERS);                                                   \
  } while (0)

// Eight independent accumulator chains per iteration hide each instruction's
// latency; the asm keeps the compiler from hoisting the loop-invariant XOR/popcount.
__attribute__((target("avx512f,avx512vpopcntdq"))) double BinaryAvx512() {
  __m512i x = _mm512_set1_epi64(0x0123456789abcdefLL), w = _mm512_set1_epi64(0x7f3a);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0;
  for (long i = 0; i < kSteps; ++i) {
#define STEP(a) "vpxorq %[w], %[x], %%zmm16\n vpopcntq %%zmm16, %%zmm16\n vpaddq %%zmm16, %" #a ", %" #a "\n"
    asm volatile(STEP([a0]) STEP([a1]) STEP([a2]) STEP([a3]) STEP([a4]) STEP([a5]) STEP([a6])
                     STEP([a7])
                 : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4),
                   [a5] "+v"(a5), [a6] "+v"(a6), [a7] "+v"(a7)
                 : [w] "v"(w), [x] "v"(x)
                 : "xmm16");
#undef STEP
  }
  return 8.0 * 512 * kSteps;
}

__attribute__((target("avx2"))) double BinaryAvx2() {
  __m256i xl = _mm256_set1_epi8(3), xh = _mm256_set1_epi8(5), fl = _mm256_set1_epi8(9),
          fh = _mm256_set1_epi8(12), lut = _mm256_set1_epi8(1);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
  for (long i = 0; i < kSteps; ++i) {
#define STEP(c)                                                                               \
  "vpxor %[fl], %[xl], %%ymm12\n vpshufb %%ymm12, %[lut], %%ymm12\n vpaddb %%ymm12, %" #c \
  ", %" #c "\n vpxor %[fh], %[xh], %%ymm13\n vpshufb %%ymm13, %[lut], %%ymm13\n vpaddb "    \
  "%%ymm13, %" #c ", %" #c "\n"
    asm volatile(STEP([c0]) STEP([c1]) STEP([c2]) STEP([c3]) STEP([c0]) STEP([c1]) STEP([c2])
                     STEP([c3])
                 : [c0] "+x"(c0), [c1] "+x"(c1), [c2] "+x"(c2), [c3] "+x"(c3)
                 : [xl] "x"(xl), [xh] "x"(xh), [fl] "x"(fl), [fh] "x"(fh), [lut] "x"(lut)
                 : "xmm12", "xmm13");
#undef STEP
  }
  return 8.0 * 256 * kSteps;
}

__attribute__((target("avx512f,avx512vnni"))) double Int8Vnni512() {
  ZMM16_LOOP("vpdpbusd", _mm512_set1_epi8(5), _mm512_set1_epi8(3));
  return 16.0 * 64 * kSteps;
}

__attribute__((target("avx2"))) double Int8Avx2() {
  __m256i x = _mm256_set1_epi8(3), w = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i < kSteps; ++i) {
#define STEP(a)                                                                        \
  "vpmaddubsw %[w], %[x], %%ymm12\n vpmaddwd %[one], %%ymm12, %%ymm12\n vpaddd %%ymm12, %" #a \
  ", %" #a "\n"
    asm volatile(STEP([a0]) STEP([a1]) STEP([a2]) STEP([a3]) STEP([a0]) STEP([a1]) STEP([a2])
                     STEP([a3])
                 : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3)
                 : [w] "x"(w), [x] "x"(x), [one] "x"(one)
                 : "xmm12");
#undef STEP
  }
  return 8.0 * 32 * kSteps;
}

// The AMX tile unit: 4 independent 16x16 int32 accumulator tiles, each TDPBUSD a
// 16x64 by 64x16 int8 product (16,384 MACs). Linux hands tile state to a process
// only on request (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA): refused means no AMX.
bool AmxUsable() {
  unsigned eax, ebx, ecx, edx;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
  const bool tile = (edx >> 24) & 1, int8 = (edx >> 25) & 1;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return tile && int8 && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-int8"))) double Int8Amx() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.colsb[t] = 64, config.rows[t] = 16;
  alignas(64) static int8_t data[16 * 64];
  std::fill(data, data + sizeof data, int8_t{3});
  _tile_loadconfig(&config);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, data, 64); _tile_loadd(5, data, 64);
  _tile_loadd(6, data, 64); _tile_loadd(7, data, 64);
  for (long i = 0; i < kSteps / 16; ++i) {  // ~16 cycles each: fewer steps
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_stored(0, data, 64);  // keeps the chain live
  _tile_release();
  return 4.0 * 16 * 16 * 64 * (kSteps / 16);
}

__attribute__((target("avx512f"))) double FloatAvx512() {
  ZMM16_LOOP("vfmadd231ps", _mm512_set1_ps(0.0f), _mm512_set1_ps(1.0f));
  return 16.0 * 16 * kSteps;
}

__attribute__((target("avx2,fma"))) double FloatAvx2() {
  __m256 x = _mm256_set1_ps(1.0f), w = _mm256_set1_ps(0.0f);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (long i = 0; i < kSteps; ++i) {
#define STEP(a) "vfmadd231ps %[w], %[x], %" #a "\n"
    asm volatile(STEP([a0]) STEP([a1]) STEP([a2]) STEP([a3]) STEP([a4]) STEP([a5]) STEP([a6])
                     STEP([a7])
                 : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4),
                   [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7)
                 : [w] "x"(w), [x] "x"(x));
#undef STEP
  }
  return 8.0 * 8 * kSteps;
}

struct Subject {
  std::string name;
  bool supported;
  std::function<double()> run;  // returns the MACs it did
  std::vector<double> gmacs;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 15;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  std::vector<Subject> subjects = {
      {"binary_avx512", avx512 && __builtin_cpu_supports("avx512vpopcntdq"), BinaryAvx512, {}},
      {"binary_avx2", avx2, BinaryAvx2, {}},
      {"int8_vnni512", avx512 && __builtin_cpu_supports("avx512vnni"), Int8Vnni512, {}},
      {"int8_avx2", avx2, Int8Avx2, {}},
      {"int8_amx", AmxUsable(), Int8Amx, {}},
      {"float_avx512", avx512, FloatAvx512, {}},
      {"float_avx2", avx2 && __builtin_cpu_supports("fma"), FloatAvx2, {}},
  };
  for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms the units up, not timed
    for (Subject& s : subjects) {
      if (!s.supported) continue;
      const auto start = std::chrono::steady_clock::now();
      const double macs = s.run();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      if (r > 0) s.gmacs.push_back(macs / took.count() / 1e9);
    }
  }
  for (Subject& s : subjects) {
    if (!s.supported) {
      std::printf("%s unsupported\n", s.name.c_str());
      continue;
    }
    std::sort(s.gmacs.begin(), s.gmacs.end());
    std::printf("%s %.1f\n", s.name.c_str(), s.gmacs[s.gmacs.size() / 2]);
  }
  return 0;
}

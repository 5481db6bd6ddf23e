// Kernel selection: BITLITE_KERNEL=<name> overrides; otherwise the best kernel
// the CPU runs (checked at run time on x86, where one binary serves all CPUs).
#include <cstdlib>
#include <cstring>

#include "bgemm.h"

namespace bitlite {
namespace {

const BgemmKernel kReference = {"reference", nullptr};
const BgemmKernel kGeneric = {"generic", BgemmGeneric, nullptr, false, false, false, 5e5};
#if defined(__x86_64__) || defined(__i386__)
// Thread thresholds: ~20 us of each kernel's work (AVX-512 VPOPCNTDQ ~1 binary
// MAC/ps per core, AVX2 ~0.4, NEON ~0.15, generic ~0.025).
const BgemmKernel kAvx2 = {"avx2", BgemmAvx2, BgemmAvx2Blocked, false, /*fuses=*/true,
                           /*nibbles=*/true, 8e6};
const BgemmKernel kAvx512 = {"avx512", BgemmAvx512, BgemmAvx512Blocked, false, /*fuses=*/true,
                             false, 2e7};

bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
bool HasAvx512Popcnt() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
#if defined(__aarch64__)
const BgemmKernel kNeon = {"neon", BgemmNeon, BgemmNeonBlocked, /*interleave4=*/true,
                           /*fuses=*/true, false, 3e6};
#else
const BgemmKernel kNeon = {"neon", BgemmNeon};
#endif
#endif

const BgemmKernel* Best() {
#if defined(__x86_64__) || defined(__i386__)
  if (HasAvx512Popcnt()) return &kAvx512;
  if (HasAvx2()) return &kAvx2;
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
  return &kNeon;
#endif
  return &kGeneric;
}

}  // namespace

const BgemmKernel* SelectKernel(const char* name, const char** error) {
  *error = nullptr;
  if (name == nullptr || *name == '\0' || std::strcmp(name, "auto") == 0) return Best();
  if (std::strcmp(name, "reference") == 0) return &kReference;
  if (std::strcmp(name, "generic") == 0) return &kGeneric;
#if defined(__x86_64__) || defined(__i386__)
  if (std::strcmp(name, "avx2") == 0) {
    if (HasAvx2()) return &kAvx2;
    *error = "BITLITE_KERNEL=avx2 but this CPU has no AVX2";
    return nullptr;
  }
  if (std::strcmp(name, "avx512") == 0) {
    if (HasAvx512Popcnt()) return &kAvx512;
    *error = "BITLITE_KERNEL=avx512 but this CPU has no AVX-512 VPOPCNTDQ";
    return nullptr;
  }
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
  if (std::strcmp(name, "neon") == 0) return &kNeon;
#endif
  if (std::strcmp(name, "avx2") == 0 || std::strcmp(name, "avx512") == 0) {
    *error = "BITLITE_KERNEL: this build has no x86 kernels (not an x86-64 build)";
    return nullptr;
  }
  if (std::strcmp(name, "neon") == 0) {
    *error = "BITLITE_KERNEL: this build has no NEON kernels (not an Arm build)";
    return nullptr;
  }
  *error = "unknown BITLITE_KERNEL (expected auto, reference, generic, avx2, avx512 or neon "
           "as this build and CPU allow)";
  return nullptr;
}

const char* SelectedKernelName() {
  const char* error = nullptr;
  const BgemmKernel* k = SelectKernel(std::getenv("BITLITE_KERNEL"), &error);
  return k ? k->name : "invalid";
}

}  // namespace bitlite

// Binary GEMM kernels: the inner loop of a binary convolution.
//
//   accum[p * ldc + o] = sum_{k < kwords} popcount(patches[p*kwords + k] XOR
//                                                  filters[o*kwords + k])
//
// i.e. the number of sign disagreements between an im2col patch row and a
// filter row, 32 channels per uint32 word. `kwords` is always a multiple of
// kKWordAlign (rows are zero-padded; 0 XOR 0 adds nothing). Each kernel is an
// exact integer computation, so every kernel must agree bit for bit with the
// generic one; tests check that on random tensors.
#ifndef BITLITE_BGEMM_H_
#define BITLITE_BGEMM_H_

#include <cstdint>

namespace bitlite {

constexpr int kKWordAlign = 4;  // 128 bits: one NEON / SSE register

using BgemmFn = void (*)(const uint32_t* patches, int n_pix,
                         const uint32_t* filters, int n_out, int kwords,
                         int32_t* accum, int ldc);

struct BgemmKernel {
  const char* name;
  BgemmFn run;
};

// Portable C++ (64-bit popcount). Always available.
void BgemmGeneric(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);

#if defined(__x86_64__) || defined(__i386__)
// Compiled with function target attributes; call only if the CPU has them.
void BgemmAvx2(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
void BgemmAvx512(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
void BgemmNeon(const uint32_t*, int, const uint32_t*, int, int, int32_t*, int);
#endif

// The kernel names this build knows, whether or not this CPU can run them.
// "reference" is not a GEMM kernel: it selects the direct convolution oracle.
// Returns nullptr (and sets *error) when `name` is unknown or this CPU lacks
// the instructions. `name == nullptr` picks the best kernel for this CPU.
const BgemmKernel* SelectKernel(const char* name, const char** error);

// The name the current environment selects (BITLITE_KERNEL or the best one).
const char* SelectedKernelName();

}  // namespace bitlite

#endif  // BITLITE_BGEMM_H_

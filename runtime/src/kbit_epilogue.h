// The k-bit ops' per-element work (kbit.h), vectorized per instruction set: the
// epilogue of BitliteKbitBconv2d (the planes' int32 counts -> P, the zero-padding fix,
// the pool, and the float output or the next layer's bitpacked planes) and
// BitliteKbitQuantize, both over a range of pixels so that threads can split them.
// Compare masks give the output bits directly (no +-1 array, no second pass).
// kbit.cc keeps the plain per-pixel C++ of both as the oracle (reference kernel).
#ifndef BITLITE_KBIT_EPILOGUE_H_
#define BITLITE_KBIT_EPILOGUE_H_

#include <cstdint>

#include "bgemm.h"
#include "kbit.h"
#include "kbit_tiles.h"

namespace bitlite {

// The GEMM's counts of a range of conv pixels: conv pixel p's (flat over the batch)
// plane i at data + i * plane_stride + (p - first) * out_c.
struct KbitCounts {
  const int32_t* data;
  long first;
  long plane_stride;
};

struct KbitVector {
  const char* name;
  // Output pixels [q0, q1) (flat over the batch) of `plan` from the counts of (at
  // least) their conv pixels into `out` (float* or int32_t* per plan).
  void (*epilogue)(const KbitPlan& plan, const KbitCounts& counts, void* out, long q0, long q1);
  // BitliteKbitQuantize's rows [r0, r1) of x [rows, channels] -> out [planes][rows][words].
  void (*quantize)(const float* x, long rows, int channels, const float* offsets, int planes,
                   int32_t* out, long r0, long r1);
  // The fused k-bit GEMM (kbit_tiles.h), or null where the kernel has none.
  KbitTilesFn tiles = nullptr;
};

// The vector code that goes with a GEMM kernel: AVX-512 with "avx512", AVX2 with
// "avx2", else portable C++ (compiled for the library's baseline: SSE2, NEON).
const KbitVector& KbitVectorFor(const BgemmKernel* kernel);

}  // namespace bitlite

#endif  // BITLITE_KBIT_EPILOGUE_H_

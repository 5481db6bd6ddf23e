// The k-bit ops' vector code (kbit_epilogue.h): kbit_epilogue_body.h compiled once
// per instruction set, each with its `Lanes`: AVX-512 (16 lanes, mask registers),
// AVX2 (8 lanes, vector masks, movemask for the bits), and portable C++ (16 lanes
// as arrays: plain loops the compiler vectorizes for the baseline, e.g. NEON).
#include "kbit_epilogue.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 flags the deliberately undefined operand inside its own AVX-512 intrinsics
// (see bgemm_avx512_4x16.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

// The bits are stored as the low bytes of a uint32 (kbit_epilogue_body.h: StoreBits).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian bit stores");

namespace bitlite {

#if defined(__GNUC__)
#define KBIT_INLINE inline __attribute__((always_inline))
#else
#define KBIT_INLINE inline
#endif

namespace portable {

#define KBIT_TARGET

struct Lanes {
  static constexpr int kLanes = 16;
  struct V {
    int32_t v[kLanes];
  };
  struct F {
    float v[kLanes];
  };
  using M = int;  // the first M lanes are valid
  static M Mask(int n) { return n; }
  static V Load(const int32_t* p, M m) {
    V r{};
    std::memcpy(r.v, p, sizeof(int32_t) * m);
    return r;
  }
  static void Store(int32_t* p, V v, M m) { std::memcpy(p, v.v, sizeof(int32_t) * m); }
  static F LoadF(const float* p, M m) {
    F r{};
    std::memcpy(r.v, p, sizeof(float) * m);
    return r;
  }
  static V Set(int32_t x) {
    V r;
    std::fill(r.v, r.v + kLanes, x);
    return r;
  }
#define KBIT_LANEWISE(name, expr)              \
  static V name(V a, V b) {                    \
    V r;                                       \
    for (int i = 0; i < kLanes; ++i) r.v[i] = (expr); \
    return r;                                  \
  }
  KBIT_LANEWISE(Add, a.v[i] + b.v[i])
  KBIT_LANEWISE(Sub, a.v[i] - b.v[i])
  KBIT_LANEWISE(Xor, a.v[i] ^ b.v[i])
  KBIT_LANEWISE(And, a.v[i] & b.v[i])
  KBIT_LANEWISE(Max, std::max(a.v[i], b.v[i]))
  KBIT_LANEWISE(Min, std::min(a.v[i], b.v[i]))
#undef KBIT_LANEWISE
  static V CountGt(V n, V key, V t) {
    for (int i = 0; i < kLanes; ++i) n.v[i] += key.v[i] > t.v[i];
    return n;
  }
  static V CountNotNegative(V n, F x, F t) {
    for (int i = 0; i < kLanes; ++i) n.v[i] += !(x.v[i] + t.v[i] < 0.0f);
    return n;
  }
  // Bit i set where lane i (< m) of q has `bit` clear.
  static uint32_t ZeroBits(V q, int32_t bit, M m) {
    uint32_t bits = 0;
    for (int i = 0; i < m; ++i) bits |= static_cast<uint32_t>((q.v[i] & bit) == 0) << i;
    return bits;
  }
  static void StoreFloat(float* y, V x, const float* mul, const float* bias, M m) {
    for (int i = 0; i < m; ++i) y[i] = static_cast<float>(x.v[i]) * mul[i] + bias[i];
  }
};

#include "kbit_epilogue_body.h"
#undef KBIT_TARGET

}  // namespace portable

#if defined(__x86_64__) || defined(__i386__)
namespace avx512 {

#define KBIT_TARGET __attribute__((target("avx512f")))

struct Lanes {
  static constexpr int kLanes = 16;
  using V = __m512i;
  using F = __m512;
  using M = __mmask16;
  KBIT_TARGET static M Mask(int n) { return static_cast<M>((1u << n) - 1); }
  KBIT_TARGET static V Load(const int32_t* p, M m) { return _mm512_maskz_loadu_epi32(m, p); }
  KBIT_TARGET static void Store(int32_t* p, V v, M m) { _mm512_mask_storeu_epi32(p, m, v); }
  KBIT_TARGET static F LoadF(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  KBIT_TARGET static V Set(int32_t x) { return _mm512_set1_epi32(x); }
  KBIT_TARGET static V Add(V a, V b) { return _mm512_add_epi32(a, b); }
  KBIT_TARGET static V Sub(V a, V b) { return _mm512_sub_epi32(a, b); }
  KBIT_TARGET static V Xor(V a, V b) { return _mm512_xor_si512(a, b); }
  KBIT_TARGET static V And(V a, V b) { return _mm512_and_si512(a, b); }
  KBIT_TARGET static V Max(V a, V b) { return _mm512_max_epi32(a, b); }
  KBIT_TARGET static V Min(V a, V b) { return _mm512_min_epi32(a, b); }
  KBIT_TARGET static V CountGt(V n, V key, V t) {
    return _mm512_mask_add_epi32(n, _mm512_cmpgt_epi32_mask(key, t), n, _mm512_set1_epi32(1));
  }
  KBIT_TARGET static V CountNotNegative(V n, F x, F t) {
    // !(x + t < 0): not-less-than, true for NaN as the scalar test
    const __mmask16 ge = _mm512_cmp_ps_mask(_mm512_add_ps(x, t), _mm512_setzero_ps(), _CMP_NLT_UQ);
    return _mm512_mask_add_epi32(n, ge, n, _mm512_set1_epi32(1));
  }
  KBIT_TARGET static uint32_t ZeroBits(V q, int32_t bit, M m) {
    return _mm512_mask_testn_epi32_mask(m, q, _mm512_set1_epi32(bit));
  }
  KBIT_TARGET static void StoreFloat(float* y, V x, const float* mul, const float* bias, M m) {
    const F f = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_maskz_loadu_ps(m, mul)),
                              _mm512_maskz_loadu_ps(m, bias));
    _mm512_mask_storeu_ps(y, m, f);
  }
};

#include "kbit_epilogue_body.h"
#undef KBIT_TARGET

}  // namespace avx512

namespace avx2 {

#define KBIT_TARGET __attribute__((target("avx2")))

struct Lanes {
  static constexpr int kLanes = 8;
  using V = __m256i;
  using F = __m256;
  using M = __m256i;  // all ones in the valid lanes
  KBIT_TARGET static M Mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  KBIT_TARGET static V Load(const int32_t* p, M m) { return _mm256_maskload_epi32(p, m); }
  KBIT_TARGET static void Store(int32_t* p, V v, M m) { _mm256_maskstore_epi32(p, m, v); }
  KBIT_TARGET static F LoadF(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  KBIT_TARGET static V Set(int32_t x) { return _mm256_set1_epi32(x); }
  KBIT_TARGET static V Add(V a, V b) { return _mm256_add_epi32(a, b); }
  KBIT_TARGET static V Sub(V a, V b) { return _mm256_sub_epi32(a, b); }
  KBIT_TARGET static V Xor(V a, V b) { return _mm256_xor_si256(a, b); }
  KBIT_TARGET static V And(V a, V b) { return _mm256_and_si256(a, b); }
  KBIT_TARGET static V Max(V a, V b) { return _mm256_max_epi32(a, b); }
  KBIT_TARGET static V Min(V a, V b) { return _mm256_min_epi32(a, b); }
  KBIT_TARGET static V CountGt(V n, V key, V t) {  // a true compare is -1
    return _mm256_sub_epi32(n, _mm256_cmpgt_epi32(key, t));
  }
  KBIT_TARGET static V CountNotNegative(V n, F x, F t) {
    const F ge = _mm256_cmp_ps(_mm256_add_ps(x, t), _mm256_setzero_ps(), _CMP_NLT_UQ);
    return _mm256_sub_epi32(n, _mm256_castps_si256(ge));
  }
  KBIT_TARGET static uint32_t ZeroBits(V q, int32_t bit, M m) {
    const V zero = _mm256_cmpeq_epi32(_mm256_and_si256(q, _mm256_set1_epi32(bit)),
                                      _mm256_setzero_si256());
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(zero, m))));
  }
  KBIT_TARGET static void StoreFloat(float* y, V x, const float* mul, const float* bias, M m) {
    const F f = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(x), _mm256_maskload_ps(mul, m)),
                              _mm256_maskload_ps(bias, m));
    _mm256_maskstore_ps(y, m, f);
  }
};

#include "kbit_epilogue_body.h"
#undef KBIT_TARGET

}  // namespace avx2
#endif  // x86

const KbitVector& KbitVectorFor(const BgemmKernel* kernel) {
  static const KbitVector kPortable{"portable", portable::Epilogue, portable::Quantize};
#if defined(__x86_64__) || defined(__i386__)
  // The avx512 / avx2 kernels are selectable only where the CPU has their instructions.
  static const KbitVector kAvx512{"avx512", avx512::Epilogue, avx512::Quantize,
                                  KbitTilesAvx512};
  static const KbitVector kAvx2{"avx2", avx2::Epilogue, avx2::Quantize};
  if (kernel != nullptr && std::strcmp(kernel->name, "avx512") == 0) return kAvx512;
  if (kernel != nullptr && std::strcmp(kernel->name, "avx2") == 0) return kAvx2;
#else
  (void)kernel;
#endif
  return kPortable;
}

}  // namespace bitlite

// LceQuantize, LceDequantize and LceBMaxPool2d on plain arrays.
#ifndef BITLITE_SIMPLE_OPS_H_
#define BITLITE_SIMPLE_OPS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace bitlite {

// Packs the last axis (length `channels`) of `rows` rows, 32 values per word,
// LSB first; bit 1 means negative: x < 0 for float (so -0.0 and NaN pack as
// 0, as LCE's x86 build does; LCE's aarch64 NEON path tests the sign bit
// instead), x < zero_point for int8, !x for bool. Padding bits are 0. Rows are split
// over up to `threads` threads (the pool, thread_pool.h) when there are enough; the
// bytes written do not depend on the thread count.
void BitpackFloat(const float* in, long rows, int channels, int32_t* out, int threads = 1);
#if defined(__x86_64__) || defined(__i386__)
// AVX-512 / AVX2 path of BitpackFloat (bitpack_x86.cc); false: not applicable.
bool BitpackFloatX86(const float* in, long rows, int channels, int32_t* out);
#endif
#if defined(__aarch64__)
// NEON path of BitpackFloat (bitpack_neon.cc); false: not applicable.
bool BitpackFloatNeon(const float* in, long rows, int channels, int32_t* out);
#endif
void BitpackInt8(const int8_t* in, long rows, int channels, int32_t zero_point, int32_t* out,
                 int threads = 1);
void BitpackBool(const bool* in, long rows, int channels, int32_t* out, int threads = 1);

// Unpacks: bit 0 -> `zero_value`, bit 1 -> `one_value`.
template <typename T>
void Unpack(const int32_t* in, long rows, int channels, T zero_value, T one_value, T* out) {
  const int64_t words = (int64_t(channels) + 31) / 32;  // channels may be 2^31 - 1
  for (long r = 0; r < rows; ++r) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(in) + r * words;
    T* o = out + r * int64_t(channels);
    for (int c = 0; c < channels; ++c) o[c] = ((w[c / 32] >> (c % 32)) & 1u) ? one_value : zero_value;
  }
}

struct MaxPoolOptions {
  int32_t filter_height = 0, filter_width = 0, stride_height = 0, stride_width = 0;
  int32_t padding = 0;  // 0 = SAME, 1 = VALID
};

std::string ParseMaxPoolOptions(const uint8_t* buffer, size_t length, MaxPoolOptions* out);

struct MaxPoolShape {
  int batch, in_h, in_w, words, out_h, out_w, pad_top, pad_left;
};

// Validates against the input dims [N, H, W, words]; "" or an error message.
std::string PlanMaxPool(const MaxPoolOptions& opt, const int in_dims[4], MaxPoolShape* shape);

// Binary max pooling = bitwise AND over the window (a -1 wins only if every
// value is -1); out-of-bounds taps are skipped. Output rows are split over up to
// `threads` threads when there are enough (same bytes for any count).
void BMaxPool(const MaxPoolOptions& opt, const MaxPoolShape& s, const int32_t* in, int32_t* out,
              int threads = 1);

}  // namespace bitlite

#endif  // BITLITE_SIMPLE_OPS_H_

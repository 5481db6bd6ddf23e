// BitliteDecodeWeights on plain arrays: k-bit packed weight codes -> float32.
//
// A weight tensor whose values, per output channel c, are s_c * levels[code] with at
// most 2^k levels (ternary: k = 2, po2 / weight-shared sets: k <= 4) is stored as
//   codes:  uint8, code i in bits [i*k, (i+1)*k) of the byte stream, LSB first
//           (little-endian across byte boundaries), ceil(n*k/8) bytes exactly;
//   levels: float32, 1..2^k entries;
//   scales: float32, one per channel along `axis` of the output.
// Decoding computes w_i = scales[c(i)] * levels[code_i] in float32, the product
// TFLite's per-channel DEQUANTIZE forms for int8 (scale * float(q)), so a level table
// holding the int8 path's integers q reproduces its weights bit for bit.
#ifndef BITLITE_DECODE_WEIGHTS_H_
#define BITLITE_DECODE_WEIGHTS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace bitlite {

struct DecodeOptions {
  int32_t bits = 0;  // k, 1..8
  int32_t axis = 0;  // the channel axis of the output that `scales` indexes
};

// Reads the FlexBuffer map {axis, bits}; "" or an error naming the problem.
std::string ParseDecodeOptions(const uint8_t* buffer, size_t length, DecodeOptions* out);

struct DecodePlan {
  DecodeOptions options;
  long count = 0;     // weights (elements of the output)
  long channels = 0;  // output dims[axis]
  long inner = 0;     // elements per step of the channel index (product of later dims)
};

// Number of code bytes for `count` weights of `bits` bits (ceil(count*bits/8)).
uint64_t PackedBytes(uint64_t count, int bits);

// Validates everything that comes from the model before anything is decoded: the
// output dims (rank 1..8, positive, < 2^31 elements), the axis, the code buffer size
// (exactly PackedBytes), 1 <= num_levels <= 2^bits, num_scales == dims[axis], and
// every code < num_levels. "" or an error message naming the op and the problem.
std::string PlanDecode(const DecodeOptions& options, const int* dims, int rank,
                       const uint8_t* codes, uint64_t code_bytes, long num_levels,
                       long num_scales, DecodePlan* plan);

// Code i of a k-bit stream (no bounds checks: PlanDecode did them).
inline uint32_t CodeAt(const uint8_t* codes, long i, int bits) {
  const uint64_t bit = uint64_t(i) * bits;
  const uint64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  uint32_t v = codes[byte] >> shift;
  if (shift + bits > 8) v |= uint32_t(codes[byte + 1]) << (8 - shift);
  return v & ((1u << bits) - 1u);
}

// out[i] = scales[channel(i)] * levels[code_i] over the whole plan.
void DecodeWeights(const DecodePlan& plan, const uint8_t* codes, const float* levels,
                   const float* scales, float* out);

}  // namespace bitlite

#endif  // BITLITE_DECODE_WEIGHTS_H_

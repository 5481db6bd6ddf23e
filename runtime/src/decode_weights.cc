#include "decode_weights.h"

#include <vector>

#include "flexbuffer.h"

namespace bitlite {

std::string ParseDecodeOptions(const uint8_t* buffer, size_t length, DecodeOptions* out) {
  static const std::vector<std::string> keys = {"axis", "bits"};
  std::vector<int32_t> v;
  std::string error;
  if (!ReadInt32Options(buffer, length, keys, &v, &error))
    return "BitliteDecodeWeights: " + error;
  DecodeOptions o;
  o.axis = v[0];
  o.bits = v[1];
  if (o.bits < 1 || o.bits > 8) return "BitliteDecodeWeights: bits must be in 1..8";
  if (o.axis < 0 || o.axis > 7) return "BitliteDecodeWeights: axis must be in 0..7";
  *out = o;
  return "";
}

uint64_t PackedBytes(uint64_t count, int bits) { return (count * uint64_t(bits) + 7) / 8; }

std::string PlanDecode(const DecodeOptions& o, const int* dims, int rank, const uint8_t* codes,
                       uint64_t code_bytes, long num_levels, long num_scales, DecodePlan* plan) {
  const std::string op = "BitliteDecodeWeights: ";
  if (o.bits < 1 || o.bits > 8) return op + "bits must be in 1..8";
  if (o.axis < 0) return op + "axis must not be negative";
  if (rank < 1 || rank > 8) return op + "output rank must be in 1..8";
  if (o.axis >= rank) return op + "axis is outside the output's rank";
  int64_t count = 1, inner = 1;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] < 1) return op + "output dimensions must be positive";
    count *= dims[i];
    if (i > o.axis) inner *= dims[i];
    if (count > (int64_t(1) << 31)) return op + "output has more than 2^31 elements";
  }
  if (code_bytes != PackedBytes(uint64_t(count), o.bits))
    return op + "codes hold " + std::to_string(code_bytes) + " bytes; " +
           std::to_string(count) + " weights of " + std::to_string(o.bits) + " bits need " +
           std::to_string(PackedBytes(uint64_t(count), o.bits));
  if (num_levels < 1 || num_levels > (1L << o.bits))
    return op + "level table must hold 1.." + std::to_string(1L << o.bits) + " entries (has " +
           std::to_string(num_levels) + ")";
  if (num_scales != dims[o.axis])
    return op + "scales hold " + std::to_string(num_scales) + " entries; axis " +
           std::to_string(o.axis) + " has " + std::to_string(dims[o.axis]) + " channels";
  if (codes == nullptr && count > 0) return op + "codes have no data";
  for (long i = 0; i < count; ++i)
    if (CodeAt(codes, i, o.bits) >= uint32_t(num_levels))
      return op + "code " + std::to_string(CodeAt(codes, i, o.bits)) + " of weight " +
             std::to_string(i) + " is not below the " + std::to_string(num_levels) +
             " levels";
  plan->options = o;
  plan->count = static_cast<long>(count);
  plan->channels = dims[o.axis];
  plan->inner = static_cast<long>(inner);
  return "";
}

void DecodeWeights(const DecodePlan& p, const uint8_t* codes, const float* levels,
                   const float* scales, float* out) {
  const int bits = p.options.bits;
  long i = 0;
  while (i < p.count) {  // runs of `inner` weights share a channel
    const float s = scales[(i / p.inner) % p.channels];
    const long end = i + p.inner;
    for (; i < end; ++i) out[i] = s * levels[CodeAt(codes, i, bits)];
  }
}

}  // namespace bitlite

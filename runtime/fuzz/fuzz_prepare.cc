// libFuzzer harness: the custom-options parser and prepare-time validation;
// with BITLITE_FUZZ_EVAL=1 also a run of whatever prepare accepts, on small
// fuzzer-chosen shapes (model bytes are untrusted, so anything prepare lets
// through must be safe to evaluate; much slower per execution).
//
// Input layout: byte 0 selects the op (0 mod 3: LceBconv2d, 1: LceBMaxPool2d,
// 2: BitliteDecodeWeights); bytes 1..8 pick shapes and the output type; the rest is
// the options buffer (for BitliteDecodeWeights: parsed as options, and also used as
// the packed code stream, with bits/axis/dims/table sizes from bytes 1..8, so that
// prepare's checks of untrusted codes are fuzzed; accepted streams are decoded).
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
//     runtime/fuzz/fuzz_prepare.cc runtime/src/{bconv,bgemm_generic,bgemm_x86,bgemm_avx512_4x16,thread_pool,bitpack_x86,bgemm_avx2_2x8,\
//     dispatch,flexbuffer,simple_ops}.cc -o fuzz_prepare
//   ./fuzz_prepare -runs=10000000 runtime/fuzz/corpus
// (bench/run_fuzz.sh does exactly this and records the numbers.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/bconv.h"
#include "../src/bgemm.h"
#include "../src/decode_weights.h"
#include "../src/simple_ops.h"

using namespace bitlite;

namespace {

const bool kEval = std::getenv("BITLITE_FUZZ_EVAL") != nullptr;

void FuzzBConv(const uint8_t* shape, const uint8_t* options, size_t length) {
  BConvOptions opt;
  if (!ParseBConvOptions(options, length, &opt).empty()) return;
  // Small shapes only, so each execution stays cheap; prepare must still
  // reject every inconsistent combination of them with the options.
  const int in_dims[4] = {1 + shape[0] % 2, 1 + shape[1] % 9, 1 + shape[2] % 9,
                          1 + shape[3] % 8};
  const int filter_dims[4] = {1 + shape[4] % 40, 1 + shape[5] % 4, 1 + shape[6] % 4,
                              1 + shape[7] % 8};
  const OutputType type = static_cast<OutputType>(shape[0] / 2 % 3);
  const size_t filter_words =
      size_t(filter_dims[0]) * filter_dims[1] * filter_dims[2] * filter_dims[3];
  std::vector<int32_t> filter(filter_words);
  for (size_t i = 0; i < filter_words; ++i) filter[i] = static_cast<int32_t>(i * 2654435761u);
  std::vector<float> mul(filter_dims[0], 0.5f), bias(filter_dims[0], -1.0f);
  std::vector<int32_t> thresholds(filter_dims[0], 3);
  BConvTensors t{in_dims, filter_dims, filter.data(), mul.data(), bias.data(),
                 thresholds.data(), type, 0.1f, 0};
  BConvPlan plan;
  if (!PlanBConv(opt, t, &plan).empty() || !kEval) return;
  int dims[4];
  BConvOutputDims(plan, dims);
  const size_t out_n = size_t(dims[0]) * dims[1] * dims[2] * dims[3];
  // Run what prepare accepted on small outputs (larger ones are valid but too slow
  // to run on every execution; the parser and prepare still see them).
  if (out_n > 512) return;
  std::vector<int32_t> input(size_t(in_dims[0]) * in_dims[1] * in_dims[2] * in_dims[3], 0x5a5a);
  std::vector<int32_t> out(out_n);
  const BgemmKernel reference = {"reference", nullptr};
  RunBConv(plan, &reference, 1, input.data(), out.data());
  const char* error = nullptr;
  RunBConv(plan, SelectKernel(nullptr, &error), 2, input.data(), out.data());
}

void FuzzMaxPool(const uint8_t* shape, const uint8_t* options, size_t length) {
  MaxPoolOptions opt;
  if (!ParseMaxPoolOptions(options, length, &opt).empty()) return;
  const int in_dims[4] = {1 + shape[0] % 2, 1 + shape[1] % 17, 1 + shape[2] % 17,
                          1 + shape[3] % 8};
  MaxPoolShape s;
  if (!PlanMaxPool(opt, in_dims, &s).empty() || !kEval) return;
  std::vector<int32_t> input(size_t(in_dims[0]) * in_dims[1] * in_dims[2] * in_dims[3], -1);
  std::vector<int32_t> out(size_t(s.batch) * s.out_h * s.out_w * s.words);
  BMaxPool(opt, s, input.data(), out.data());
}

void FuzzDecode(const uint8_t* shape, const uint8_t* bytes, size_t length) {
  DecodeOptions parsed;
  ParseDecodeOptions(bytes, length, &parsed);
  DecodeOptions o;
  o.bits = shape[0] % 10;  // 0 and 9 included: PlanDecode must refuse them too
  o.axis = shape[1] % 3;
  const int rank = 1 + shape[2] % 3;
  const int dims[3] = {shape[3] % 17, 1 + shape[4] % 13, 1 + shape[5] % 7};
  const long levels_n = shape[6] % 260;
  const long scales_n = shape[7] % 18;
  DecodePlan plan;
  if (!PlanDecode(o, dims, rank, length ? bytes : nullptr, length, levels_n, scales_n, &plan)
           .empty())
    return;
  std::vector<float> levels(levels_n, 0.5f), scales(scales_n, 2.0f), out(plan.count);
  DecodeWeights(plan, bytes, levels.data(), scales.data(), out.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  // Copy the options so that ASan sees the exact buffer end.
  std::vector<uint8_t> options(data + 9, data + size);
  if (data[0] % 3 == 0)
    FuzzBConv(data + 1, options.data(), options.size());
  else if (data[0] % 3 == 1)
    FuzzMaxPool(data + 1, options.data(), options.size());
  else
    FuzzDecode(data + 1, options.data(), options.size());
  return 0;
}

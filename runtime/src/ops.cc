// The four LCE custom ops and bitlite's own BitliteDecodeWeights (k-bit packed
// weights) as kernels over TFLite's C structs; delegate.cc runs them (see ops.h).
#include "ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "bconv.h"
#include "decode_weights.h"
#include "flexbuffer.h"
#include "kbit.h"
#include "simple_ops.h"
#include "thread_pool.h"

namespace bitlite {
namespace {

TfLiteStatus Report(TfLiteContext* context, const std::string& msg) {
  context->ReportError(context, "%s", msg.c_str());
  return kTfLiteError;
}

const TfLiteTensor* Input(TfLiteContext* context, TfLiteNode* node, int i) {
  if (node->inputs == nullptr || i >= node->inputs->size) return nullptr;
  const int idx = node->inputs->data[i];
  if (idx < 0 || static_cast<size_t>(idx) >= context->tensors_size) return nullptr;
  return &context->tensors[idx];
}

TfLiteTensor* Output(TfLiteContext* context, TfLiteNode* node, int i) {
  if (node->outputs == nullptr || i >= node->outputs->size) return nullptr;
  const int idx = node->outputs->data[i];
  if (idx < 0 || static_cast<size_t>(idx) >= context->tensors_size) return nullptr;
  return &context->tensors[idx];
}

int NumDims(const TfLiteTensor* t) { return t && t->dims ? t->dims->size : -1; }

// The node's input / output count, -1 when the host gave no list.
int NumInputs(const TfLiteNode* node) { return node->inputs ? node->inputs->size : -1; }
int NumOutputs(const TfLiteNode* node) { return node->outputs ? node->outputs->size : -1; }

// -1 for a missing shape, a negative dimension or more than 2^31 elements (so a
// `long` fits it on 32-bit Arm too).
long NumElements(const TfLiteTensor* t) {
  if (t == nullptr || t->dims == nullptr || t->dims->size < 0) return -1;
  int64_t n = 1;
  for (int i = 0; i < t->dims->size; ++i) {
    if (t->dims->data[i] < 0) return -1;
    n *= t->dims->data[i];
    if (n > (int64_t(1) << 31)) return -1;
  }
  return static_cast<long>(n);
}

// Bytes per element of the types our kernels read or write (0: none of ours).
size_t ElementSize(TfLiteType type) {
  switch (type) {
    case kTfLiteFloat32:
    case kTfLiteInt32:
      return 4;
    case kTfLiteInt8:
    case kTfLiteUInt8:
      return 1;
    case kTfLiteBool:
      return sizeof(bool);
    default:
      return 0;
  }
}

bool IsConstant(const TfLiteTensor* t) {
  return t->allocation_type == kTfLiteMmapRo || t->allocation_type == kTfLitePersistentRo;
}

// True when `t` has memory for all of its elements: what every eval checks on entry
// (cheap; prepare already refused every model where this can fail).
bool HasData(const TfLiteTensor* t) {
  const long n = NumElements(t);
  if (n < 0 || ElementSize(t->type) == 0) return false;
  return n == 0 || (t->data.raw != nullptr && uint64_t(t->bytes) >= uint64_t(n) * ElementSize(t->type));
}

// What holds for every tensor an op touches, checked at prepare: a shape with a
// countable number of elements, no sparsity (TFLite does not check a sparse constant's
// buffer size, and our kernels read tensors densely), a constant's buffer holding every
// element, and per-tensor quantization parameters in range for int8. "" or the problem.
std::string CheckTensor(const TfLiteTensor* t, const std::string& what) {
  if (t == nullptr) return what + " is missing";
  if (t->dims == nullptr) return what + " has no shape";
  if (t->sparsity != nullptr) return what + " is a sparse tensor (not supported)";
  if (NumElements(t) < 0)
    return what + " has a negative dimension or more than 2^31 elements";
  if (IsConstant(t) && ElementSize(t->type) > 0 && !HasData(t))  // ours: typed by the op
    return what + " is constant but its buffer holds " + std::to_string(t->bytes) +
           " bytes, fewer than its " + std::to_string(NumElements(t)) + " elements need";
  if (t->type != kTfLiteInt8) return "";
  if (t->params.zero_point < -128 || t->params.zero_point > 127)
    return what + " has zero point " + std::to_string(t->params.zero_point) +
           " outside the int8 range";
  if (t->quantization.type == kTfLiteAffineQuantization) {
    const auto* q = static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
    if (q != nullptr && ((q->scale != nullptr && q->scale->size > 1) ||
                         (q->zero_point != nullptr && q->zero_point->size > 1)))
      return what + " is quantized per channel (only per-tensor int8 is supported)";
    if (!(t->params.scale > 0.0f) || !std::isfinite(t->params.scale))
      return what + " needs a positive, finite quantization scale";
  }
  return "";
}

// An op's output: checked as above, and neither constant (we would write into the
// model file's read-only mapping) nor one of the op's own inputs.
std::string CheckOutput(const TfLiteNode* node, int input_count, const TfLiteTensor* t,
                        const std::string& what) {
  std::string e = CheckTensor(t, what);
  if (!e.empty()) return e;
  if (IsConstant(t)) return what + " is a constant tensor";
  for (int i = 0; i < input_count && i < NumInputs(node); ++i)
    if (node->inputs->data[i] == node->outputs->data[0])
      return what + " is also one of the op's inputs";
  return "";
}

// A constant tensor of the given type, rank and element count, with its data.
std::string CheckConstant(const TfLiteTensor* t, TfLiteType type, int rank, long elems,
                          const char* what) {
  const std::string w = what;
  if (t == nullptr) return w + " is missing";
  if (t->type != type) return w + " has the wrong type";
  std::string e = CheckTensor(t, w);
  if (!e.empty()) return e;
  if (NumDims(t) != rank) return w + " has the wrong rank";
  if (!IsConstant(t)) return w + " must be a constant tensor (it is packed at prepare)";
  if (elems >= 0 && NumElements(t) != elems) return w + " has the wrong number of elements";
  if (t->data.raw == nullptr) return w + " has no data";
  return "";
}

// The host frees the new shape with TfLiteIntArrayFree, which is free(): every
// TFLite build allocates these arrays with malloc, so we can make one ourselves.
TfLiteStatus Resize(TfLiteContext* context, TfLiteTensor* t, int rank, const int* dims) {
  auto* a = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (1 + size_t(rank))));
  if (a == nullptr) return kTfLiteError;
  a->size = rank;
  for (int i = 0; i < rank; ++i) a->data[i] = dims[i];
  return context->ResizeTensor(context, t, a);  // takes ownership of `a`
}

// Selects the GEMM kernel: the delegate's `kernel` option, else BITLITE_KERNEL (read
// at every prepare so tests can switch between the oracle and the optimized kernels
// in one process), else the CPU's best.
const BgemmKernel* ConfiguredKernel(const OpConfig& config, std::string* error) {
  const char* e = nullptr;
  const char* name = config.kernel.empty() ? std::getenv("BITLITE_KERNEL") : config.kernel.c_str();
  const BgemmKernel* k = SelectKernel(name, &e);
  if (k == nullptr) *error = std::string("bitlite: ") + e;
  return k;
}

const BgemmKernel* KernelForPrepare(TfLiteContext* context, const OpConfig& config) {
  std::string error;
  const BgemmKernel* k = ConfiguredKernel(config, &error);
  if (k == nullptr) Report(context, error);
  return k;
}

int BConvThreads(const TfLiteContext* context, const OpConfig& config);  // below

// ------------------------------------------------------------ op state

// Every op keeps its state in one struct; the host frees it through this.
template <class Data>
void FreeData(void* data) {
  delete static_cast<Data*>(data);
}

// The state of an op with FlexBuffer options: the delegate's settings and the parsed
// options, or why they do not parse (reported at prepare: init cannot report).
template <class Data, class Options,
          std::string (*Parse)(const uint8_t*, size_t, Options*)>
void* InitParsed(const uint8_t* buffer, size_t length, const OpConfig& config) {
  auto* d = new Data;
  d->config = config;
  d->init_error = Parse(buffer, length, &d->options);
  return d;
}

// ------------------------------------------------------------ LceQuantize

// Packed words for `channels` values (int64: a dimension may be up to 2^31 - 1).
int64_t PackedWords(int64_t channels) { return (channels + 31) / 32; }

// Quantize's state: the delegate's settings (its thread count).
void* QuantizeInit(const uint8_t*, size_t, const OpConfig& config) { return new OpConfig(config); }

std::string QuantizePrepareImpl(TfLiteContext* context, TfLiteNode* node, OpConfig* config) {
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (NumInputs(node) != 1 || NumOutputs(node) != 1 || in == nullptr || out == nullptr)
    return "LceQuantize: expects one input and one output";
  if (in->type != kTfLiteFloat32 && in->type != kTfLiteInt8 && in->type != kTfLiteBool)
    return "LceQuantize: input must be float32, int8 or bool";
  if (out->type != kTfLiteInt32)
    return "LceQuantize: output must be int32 (got type " + std::to_string(out->type) +
           ", input " + std::to_string(in->type) + ")";
  std::string e = CheckTensor(in, "LceQuantize: input");
  if (e.empty()) e = CheckOutput(node, 1, out, "LceQuantize: output");
  if (!e.empty()) return e;
  const int rank = NumDims(in);
  if (rank < 1 || rank > 8 || NumDims(out) != rank)
    return "LceQuantize: input and output must have the same rank (1..8)";
  int dims[8];
  for (int i = 0; i < rank; ++i) dims[i] = in->dims->data[i];
  dims[rank - 1] = static_cast<int>(PackedWords(dims[rank - 1]));
  if (Resize(context, out, rank, dims) != kTfLiteOk) return "LceQuantize: cannot resize the output";
  ReserveThreads(BConvThreads(context, *config));  // invoke starts no thread
  return "";
}

TfLiteStatus QuantizeEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (in == nullptr || out == nullptr || NumDims(in) < 1 || !HasData(in) || !HasData(out))
    return Report(context, "LceQuantize: input or output has no memory at invoke");
  const int rank = NumDims(in);
  const int channels = in->dims->data[rank - 1];
  if (channels == 0) return kTfLiteOk;
  const long rows = NumElements(in) / channels;
  if (out->type != kTfLiteInt32 || NumElements(out) != rows * PackedWords(channels))
    return Report(context, "LceQuantize: output shape changed after prepare");
  const int threads = BConvThreads(context, *static_cast<OpConfig*>(node->user_data));
  if (in->type == kTfLiteFloat32)
    BitpackFloat(in->data.f, rows, channels, out->data.i32, threads);
  else if (in->type == kTfLiteInt8)
    BitpackInt8(in->data.int8, rows, channels, in->params.zero_point, out->data.i32, threads);
  else
    BitpackBool(in->data.b, rows, channels, out->data.i32, threads);
  return kTfLiteOk;
}

// ------------------------------------------------------------ LceDequantize

std::string DequantizePrepareImpl(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteTensor* in = Input(context, node, 0);
  const TfLiteTensor* out = Output(context, node, 0);
  if (NumInputs(node) != 1 || NumOutputs(node) != 1 || in == nullptr || out == nullptr)
    return "LceDequantize: expects one input and one output";
  if (in->type != kTfLiteInt32) return "LceDequantize: input must be int32";
  if (out->type != kTfLiteFloat32 && out->type != kTfLiteInt8 && out->type != kTfLiteBool)
    return "LceDequantize: output must be float32, int8 or bool";
  std::string e = CheckTensor(in, "LceDequantize: input");
  if (e.empty()) e = CheckOutput(node, 1, out, "LceDequantize: output");
  if (!e.empty()) return e;
  const int rank = NumDims(in);
  if (rank < 1 || NumDims(out) != rank)
    return "LceDequantize: input and output must have the same rank";
  for (int i = 0; i < rank - 1; ++i)
    if (in->dims->data[i] != out->dims->data[i])
      return "LceDequantize: input and output shapes differ";
  if (in->dims->data[rank - 1] != PackedWords(out->dims->data[rank - 1]))
    return "LceDequantize: packed depth does not match the output depth";
  if (out->type == kTfLiteInt8 && !(out->params.scale > 0.0f && std::isfinite(out->params.scale)))
    return "LceDequantize: int8 output needs a positive, finite scale";
  return "";
}

TfLiteStatus DequantizeEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (in == nullptr || out == nullptr || NumDims(out) < 1 || !HasData(in) || !HasData(out))
    return Report(context, "LceDequantize: input or output has no memory at invoke");
  const int rank = NumDims(out);
  const int channels = out->dims->data[rank - 1];
  if (channels == 0) return kTfLiteOk;
  const long rows = NumElements(out) / channels;
  if (NumElements(in) != rows * PackedWords(channels))
    return Report(context, "LceDequantize: input shape changed after prepare");
  if (out->type == kTfLiteFloat32) {
    Unpack<float>(in->data.i32, rows, channels, 1.0f, -1.0f, out->data.f);
  } else if (out->type == kTfLiteInt8) {
    // +-1 in the output's quantized domain, as LCE computes it; in int64, so that no
    // zero point can overflow (prepare allows only int8 ones).
    const float r = std::round(1.0f / out->params.scale);
    const int64_t offset = r > 1e6f ? 1000000 : static_cast<int64_t>(r);
    const int64_t zp = out->params.zero_point;
    const int8_t plus = static_cast<int8_t>(std::max<int64_t>(-128, std::min<int64_t>(127, zp + offset)));
    const int8_t minus = static_cast<int8_t>(std::max<int64_t>(-128, std::min<int64_t>(127, zp - offset)));
    Unpack<int8_t>(in->data.i32, rows, channels, plus, minus, out->data.int8);
  } else {
    Unpack<bool>(in->data.i32, rows, channels, true, false, out->data.b);
  }
  return kTfLiteOk;
}

// ------------------------------------------------------------ LceBconv2d

struct BConvOpData {
  std::string init_error;
  OpConfig config;
  BConvOptions options;
  BConvPlan plan;
  const BgemmKernel* kernel = nullptr;
  BConvWorkspace workspace;  // scratch for every thread, allocated at prepare
};

// The thread count for this op: the delegate's option, else the host's.
int BConvThreads(const TfLiteContext* context, const OpConfig& config) {
  const int recommended = context->recommended_num_threads;
  return config.num_threads > 0 ? config.num_threads : recommended > 0 ? recommended : 1;
}

std::string BConvPrepareImpl(TfLiteContext* context, TfLiteNode* node, BConvOpData* d) {
  if (!d->init_error.empty()) return d->init_error;
  if (NumInputs(node) != 5 || NumOutputs(node) != 1)
    return "LceBconv2d: expects 5 inputs and 1 output";
  const TfLiteTensor* in = Input(context, node, 0);
  const TfLiteTensor* filter = Input(context, node, 1);
  const TfLiteTensor* mul = Input(context, node, 2);
  const TfLiteTensor* bias = Input(context, node, 3);
  const TfLiteTensor* thr = Input(context, node, 4);
  const TfLiteTensor* out = Output(context, node, 0);
  if (in == nullptr || out == nullptr) return "LceBconv2d: input or output is missing";
  if (in->type != kTfLiteInt32 || NumDims(in) != 4)
    return "LceBconv2d: input must be a 4-D bitpacked int32 tensor";
  std::string e = CheckTensor(in, "LceBconv2d: input");
  if (e.empty()) e = CheckConstant(filter, kTfLiteInt32, 4, -1, "LceBconv2d: filter");
  if (!e.empty()) return e;
  BConvTensors t{};
  t.in_dims = in->dims->data;
  t.filter_dims = filter->dims->data;
  for (int i = 0; i < 4; ++i)
    if (t.filter_dims[i] < 1) return "LceBconv2d: filter dimensions must be positive";
  t.filter = filter->data.i32;
  const long out_c = t.filter_dims[0];
  if (out->type == kTfLiteFloat32) {
    t.out_type = OutputType::kFloat32;
  } else if (out->type == kTfLiteInt8) {
    t.out_type = OutputType::kInt8;
    if (out->quantization.type != kTfLiteAffineQuantization)
      return "LceBconv2d: int8 output must be affine-quantized";
    t.out_scale = out->params.scale;
    t.out_zero_point = out->params.zero_point;
  } else if (out->type == kTfLiteInt32) {
    t.out_type = OutputType::kBitpacked;
  } else {
    return "LceBconv2d: output must be float32, int8 or bitpacked int32";
  }
  e = CheckOutput(node, 5, out, "LceBconv2d: output");
  if (!e.empty()) return e;
  if (t.out_type == OutputType::kBitpacked) {
    e = CheckConstant(thr, kTfLiteInt32, 1, out_c, "LceBconv2d: thresholds");
    if (!e.empty()) return e;
    t.thresholds = thr->data.i32;
  } else {
    e = CheckConstant(mul, kTfLiteFloat32, 1, out_c, "LceBconv2d: post_activation_multiplier");
    if (e.empty()) e = CheckConstant(bias, kTfLiteFloat32, 1, out_c,
                                     "LceBconv2d: post_activation_bias");
    if (!e.empty()) return e;
    t.post_mul = mul->data.f;
    t.post_bias = bias->data.f;
  }
  // Inputs this output type does not read must still not be sparse or malformed.
  for (int i = 2; i < 5; ++i) {
    const TfLiteTensor* unused = Input(context, node, i);
    if (unused != nullptr) e = CheckTensor(unused, "LceBconv2d: input " + std::to_string(i));
    if (!e.empty()) return e;
  }
  e = PlanBConv(d->options, t, &d->plan);
  return e;
}

TfLiteStatus BConvPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<BConvOpData*>(node->user_data);
  std::string e;
  try {  // packing copies the filters: a huge (hostile) model may not fit in memory
    e = BConvPrepareImpl(context, node, d);
  } catch (const std::bad_alloc&) {
    e = "LceBconv2d: out of memory while packing the filters";
  }
  if (!e.empty()) return Report(context, e);
  d->kernel = KernelForPrepare(context, d->config);
  if (d->kernel == nullptr) return kTfLiteError;
  KeepFiltersFor(d->kernel, &d->plan);
  // Every thread's scratch now, so that invoke allocates nothing.
  if (!d->workspace.Reserve(d->plan, d->kernel, BConvThreads(context, d->config)))
    return Report(context, "LceBconv2d: out of memory for the convolution's scratch");
  int dims[4];
  BConvOutputDims(d->plan, dims);
  if (Resize(context, Output(context, node, 0), 4, dims) != kTfLiteOk)  // (found by fuzzing)
    return Report(context, "LceBconv2d: cannot resize the output");
  return kTfLiteOk;
}

// Bytes a tensor of the plan's shape holds: what eval checks before running.
bool HasPlannedData(const TfLiteTensor* t, const int dims[4]) {
  return t != nullptr && NumDims(t) == 4 && HasData(t) &&
         NumElements(t) == int64_t(dims[0]) * dims[1] * dims[2] * dims[3];
}

TfLiteStatus BConvEval(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<BConvOpData*>(node->user_data);
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  const BConvShape& s = d->plan.shape;
  const int in_dims[4] = {s.batch, s.in_h, s.in_w, s.in_words};
  int out_dims[4];
  BConvOutputDims(d->plan, out_dims);
  if (!HasPlannedData(in, in_dims) || !HasPlannedData(out, out_dims))
    return Report(context, "LceBconv2d: input or output does not match prepare at invoke");
  const int threads = BConvThreads(context, d->config);
  if (d->config.threads_seen) d->config.threads_seen->store(threads);
  if (!RunBConv(d->plan, d->kernel, threads, in->data.i32, out->data.raw, &d->workspace)) {
    return Report(context, "LceBconv2d: out of memory for the convolution's scratch");
  }
  return kTfLiteOk;
}

// ------------------------------------------------------------ bitlite's k-bit ops (kbit.h)

struct KbitOpData {
  std::string init_error;
  OpConfig config;
  KbitOptions options;
  KbitPlan plan;
  const BgemmKernel* kernel = nullptr;
  KbitScratch scratch;
};

std::string KbitPrepareImpl(TfLiteContext* context, TfLiteNode* node, KbitOpData* d) {
  const char* op = "BitliteKbitBconv2d: ";
  if (!d->init_error.empty()) return d->init_error;
  if (NumInputs(node) != 6 || NumOutputs(node) != 1)
    return std::string(op) + "expects 6 inputs and 1 output";
  const TfLiteTensor* in = Input(context, node, 0);
  const TfLiteTensor* filter = Input(context, node, 1);
  const TfLiteTensor* out = Output(context, node, 0);
  if (in == nullptr || out == nullptr) return std::string(op) + "input or output is missing";
  if (in->type != kTfLiteInt32 || NumDims(in) != 4)
    return std::string(op) + "input must be 4-D bitpacked int32 planes";
  std::string e = CheckTensor(in, std::string(op) + "input");
  if (e.empty()) e = CheckConstant(filter, kTfLiteInt32, 4, -1, "BitliteKbitBconv2d: filter");
  if (e.empty()) e = CheckOutput(node, 6, out, std::string(op) + "output");
  if (!e.empty()) return e;
  KbitTensors t{};
  t.in_dims = in->dims->data;
  t.filter_dims = filter->dims->data;
  t.filter = filter->data.i32;
  const long out_c = t.filter_dims[0];
  if (d->options.out_planes == 0) {
    if (out->type != kTfLiteFloat32) return std::string(op) + "out_planes=0 needs float output";
    e = CheckConstant(Input(context, node, 2), kTfLiteFloat32, 1, out_c,
                      "BitliteKbitBconv2d: post_activation_multiplier");
    if (e.empty()) e = CheckConstant(Input(context, node, 3), kTfLiteFloat32, 1, out_c,
                                     "BitliteKbitBconv2d: post_activation_bias");
    if (!e.empty()) return e;
    t.post_mul = Input(context, node, 2)->data.f;
    t.post_bias = Input(context, node, 3)->data.f;
  } else {
    if (out->type != kTfLiteInt32) return std::string(op) + "planes output must be int32";
    const long levels = (1L << d->options.out_planes) - 1;
    e = CheckConstant(Input(context, node, 4), kTfLiteInt32, 2, out_c * levels,
                      "BitliteKbitBconv2d: thresholds");
    if (e.empty()) e = CheckConstant(Input(context, node, 5), kTfLiteInt32, 1, out_c,
                                     "BitliteKbitBconv2d: flags");
    if (!e.empty()) return e;
    t.thresholds = Input(context, node, 4)->data.i32;
    t.flags = Input(context, node, 5)->data.i32;
  }
  for (int i = 0; i < 4; ++i)
    if (t.filter_dims[i] < 1) return std::string(op) + "filter dimensions must be positive";
  return PlanKbit(d->options, t, &d->plan);
}

TfLiteStatus KbitPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<KbitOpData*>(node->user_data);
  std::string e;
  try {
    e = KbitPrepareImpl(context, node, d);
  } catch (const std::bad_alloc&) {
    e = "BitliteKbitBconv2d: out of memory while packing the filters";
  }
  if (!e.empty()) return Report(context, e);
  d->kernel = KernelForPrepare(context, d->config);
  if (d->kernel == nullptr) return kTfLiteError;
  if (!KeepKbitFiltersFor(d->kernel, &d->plan))
    return Report(context, "BitliteKbitBconv2d: out of memory while packing the filters");
  if (!d->scratch.Reserve(d->plan, d->kernel, BConvThreads(context, d->config)))
    return Report(context, "BitliteKbitBconv2d: out of memory for the scratch");
  int dims[4];
  KbitOutputDims(d->plan, dims);
  if (Resize(context, Output(context, node, 0), 4, dims) != kTfLiteOk)
    return Report(context, "BitliteKbitBconv2d: cannot resize the output");
  return kTfLiteOk;
}

TfLiteStatus KbitEval(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<KbitOpData*>(node->user_data);
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  const BConvShape& s = d->plan.conv.shape;
  const int in_dims[4] = {s.batch, s.in_h, s.in_w, s.in_words};
  int out_dims[4];
  KbitOutputDims(d->plan, out_dims);
  if (!HasPlannedData(in, in_dims) || !HasPlannedData(out, out_dims))
    return Report(context, "BitliteKbitBconv2d: input or output does not match prepare at invoke");
  const int threads = BConvThreads(context, d->config);
  if (!RunKbit(d->plan, d->kernel, threads, in->data.i32, out->data.raw, &d->scratch))
    return Report(context, "BitliteKbitBconv2d: out of memory for the scratch");
  return kTfLiteOk;
}

struct KbitQuantizeOpData {
  std::string init_error;
  OpConfig config;
  int planes = 0;
  const BgemmKernel* kernel = nullptr;  // its vector code (kbit_epilogue.h)
};

void* KbitQuantizeInit(const uint8_t* buffer, size_t length, const OpConfig& config) {
  auto* d = new KbitQuantizeOpData;
  d->config = config;
  std::vector<int32_t> v;
  if (!ReadInt32Options(buffer, length, {"planes"}, &v, &d->init_error))
    d->init_error = "BitliteKbitQuantize: " + d->init_error;
  else if (v[0] < 1 || v[0] > kMaxKbitPlanes)
    d->init_error = "BitliteKbitQuantize: planes must be in 1..4";
  else
    d->planes = v[0];
  return d;
}

std::string KbitQuantizePrepareImpl(TfLiteContext* context, TfLiteNode* node,
                                    KbitQuantizeOpData* d) {
  if (!d->init_error.empty()) return d->init_error;
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (NumInputs(node) != 2 || NumOutputs(node) != 1 || in == nullptr || out == nullptr)
    return "BitliteKbitQuantize: expects 2 inputs and 1 output";
  if (in->type != kTfLiteFloat32 || out->type != kTfLiteInt32)
    return "BitliteKbitQuantize: input must be float32, output int32";
  std::string e = CheckTensor(in, "BitliteKbitQuantize: input");
  if (e.empty()) e = CheckOutput(node, 2, out, "BitliteKbitQuantize: output");
  if (!e.empty()) return e;
  const int rank = NumDims(in);
  if (rank < 1 || rank > 8 || NumDims(out) != rank)
    return "BitliteKbitQuantize: input and output must have the same rank (1..8)";
  const long channels = in->dims->data[rank - 1];
  e = CheckConstant(Input(context, node, 1), kTfLiteFloat32, 2,
                    ((1L << d->planes) - 1) * channels, "BitliteKbitQuantize: offsets");
  if (!e.empty()) return e;
  int dims[8];
  for (int i = 0; i < rank; ++i) dims[i] = in->dims->data[i];
  if (int64_t(dims[0]) * d->planes > (int64_t(1) << 30))
    return "BitliteKbitQuantize: input too large";
  dims[0] *= d->planes;
  dims[rank - 1] = static_cast<int>(PackedWords(dims[rank - 1]));
  d->kernel = ConfiguredKernel(d->config, &e);
  if (d->kernel == nullptr) return e;
  if (Resize(context, out, rank, dims) != kTfLiteOk)
    return "BitliteKbitQuantize: cannot resize the output";
  return "";
}

TfLiteStatus KbitQuantizeEval(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<KbitQuantizeOpData*>(node->user_data);
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (in == nullptr || out == nullptr || NumDims(in) < 1 || !HasData(in) || !HasData(out))
    return Report(context, "BitliteKbitQuantize: input or output has no memory at invoke");
  const int channels = in->dims->data[NumDims(in) - 1];
  if (channels == 0) return kTfLiteOk;
  const long rows = NumElements(in) / channels;
  if (NumElements(out) != d->planes * rows * PackedWords(channels))
    return Report(context, "BitliteKbitQuantize: output shape changed after prepare");
  KbitQuantize(in->data.f, rows, channels, Input(context, node, 1)->data.f, d->planes,
               out->data.i32, d->kernel, BConvThreads(context, d->config));
  return kTfLiteOk;
}

// ------------------------------------------------------------ LceBMaxPool2d

struct MaxPoolOpData {
  std::string init_error;
  OpConfig config;
  MaxPoolOptions options;
  MaxPoolShape shape{};
};

std::string MaxPoolPrepareImpl(TfLiteContext* context, TfLiteNode* node, MaxPoolOpData* d) {
  if (!d->init_error.empty()) return d->init_error;
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  if (NumInputs(node) != 1 || NumOutputs(node) != 1 || in == nullptr || out == nullptr)
    return "LceBMaxPool2d: expects one input and one output";
  if (in->type != kTfLiteInt32 || out->type != kTfLiteInt32 || NumDims(in) != 4)
    return "LceBMaxPool2d: input and output must be 4-D bitpacked int32";
  std::string e = CheckTensor(in, "LceBMaxPool2d: input");
  if (e.empty()) e = CheckOutput(node, 1, out, "LceBMaxPool2d: output");
  if (e.empty()) e = PlanMaxPool(d->options, in->dims->data, &d->shape);
  if (!e.empty()) return e;
  const int dims[4] = {d->shape.batch, d->shape.out_h, d->shape.out_w, d->shape.words};
  if (Resize(context, out, 4, dims) != kTfLiteOk) return "LceBMaxPool2d: cannot resize the output";
  ReserveThreads(BConvThreads(context, d->config));  // invoke starts no thread
  return "";
}

TfLiteStatus MaxPoolEval(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<MaxPoolOpData*>(node->user_data);
  const TfLiteTensor* in = Input(context, node, 0);
  TfLiteTensor* out = Output(context, node, 0);
  const MaxPoolShape& s = d->shape;
  const int in_dims[4] = {s.batch, s.in_h, s.in_w, s.words};
  const int out_dims[4] = {s.batch, s.out_h, s.out_w, s.words};
  if (!HasPlannedData(in, in_dims) || !HasPlannedData(out, out_dims))
    return Report(context, "LceBMaxPool2d: input or output does not match prepare at invoke");
  BMaxPool(d->options, s, in->data.i32, out->data.i32, BConvThreads(context, d->config));
  return kTfLiteOk;
}

// ------------------------------------------------------------ BitliteDecodeWeights

// Decodes done since the library was loaded (tests check that each op decodes once).
std::atomic<long> g_decode_count{0};

struct DecodeOpData {
  std::string init_error;
  DecodePlan plan;
  bool decoded = false;  // the persistent output holds the weights
};

void* DecodeInit(const uint8_t* buffer, size_t length, const OpConfig&) {
  auto* d = new DecodeOpData;
  d->init_error = ParseDecodeOptions(buffer, length, &d->plan.options);
  return d;
}

// A constant 1-D tensor of `type` with data for every element.
std::string CheckTable(const TfLiteTensor* t, TfLiteType type, const char* what) {
  const std::string w = std::string("BitliteDecodeWeights: ") + what;
  if (t == nullptr) return w + " is missing";
  if (t->type != type) return w + " has the wrong type";
  if (NumDims(t) != 1) return w + " must be 1-D";
  if (!IsConstant(t)) return w + " must be a constant tensor";
  return CheckTensor(t, w);
}

std::string DecodePrepareImpl(TfLiteContext* context, TfLiteNode* node, DecodeOpData* d) {
  if (!d->init_error.empty()) return d->init_error;
  if (NumInputs(node) != 3 || NumOutputs(node) != 1)
    return "BitliteDecodeWeights: expects 3 inputs (codes, levels, scales) and 1 output";
  const TfLiteTensor* codes = Input(context, node, 0);
  const TfLiteTensor* levels = Input(context, node, 1);
  const TfLiteTensor* scales = Input(context, node, 2);
  TfLiteTensor* out = Output(context, node, 0);
  std::string e = CheckTable(codes, kTfLiteUInt8, "codes");
  if (e.empty()) e = CheckTable(levels, kTfLiteFloat32, "level table");
  if (e.empty()) e = CheckTable(scales, kTfLiteFloat32, "scales");
  if (!e.empty()) return e;
  if (out == nullptr || out->type != kTfLiteFloat32 || out->dims == nullptr)
    return "BitliteDecodeWeights: output must be a float32 tensor with a shape";
  e = CheckOutput(node, 3, out, "BitliteDecodeWeights: output");
  if (!e.empty()) return e;
  return PlanDecode(d->plan.options, out->dims->data, NumDims(out), codes->data.uint8,
                    NumElements(codes), NumElements(levels), NumElements(scales), &d->plan);
}

TfLiteStatus DecodePrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<DecodeOpData*>(node->user_data);
  const std::string e = DecodePrepareImpl(context, node, d);
  if (!e.empty()) return Report(context, e);
  // As TFLite's DEQUANTIZE does for constant inputs: the output lives in the
  // persistent arena (never reused by other tensors), so one decode serves every
  // invoke; a new prepare (after a resize) may move it, so decode again then.
  Output(context, node, 0)->allocation_type = kTfLiteArenaRwPersistent;
  d->decoded = false;
  return kTfLiteOk;
}

TfLiteStatus DecodeEval(TfLiteContext* context, TfLiteNode* node) {
  auto* d = static_cast<DecodeOpData*>(node->user_data);
  if (d->decoded) return kTfLiteOk;
  TfLiteTensor* out = Output(context, node, 0);
  if (out == nullptr || !HasData(out) || NumElements(out) != d->plan.count)
    return Report(context, "BitliteDecodeWeights: output does not match prepare at invoke");
  DecodeWeights(d->plan, Input(context, node, 0)->data.uint8, Input(context, node, 1)->data.f,
                Input(context, node, 2)->data.f, out->data.f);
  d->decoded = true;
  g_decode_count.fetch_add(1);
  return kTfLiteOk;
}

// Prepare of the ops whose checks return a message: reported through the host.
template <std::string (*Impl)(TfLiteContext*, TfLiteNode*)>
TfLiteStatus PrepareWith(TfLiteContext* context, TfLiteNode* node) {
  const std::string e = Impl(context, node);
  return e.empty() ? kTfLiteOk : Report(context, e);
}

template <typename Data, std::string (*Impl)(TfLiteContext*, TfLiteNode*, Data*)>
TfLiteStatus PrepareWithData(TfLiteContext* context, TfLiteNode* node) {
  const std::string e = Impl(context, node, static_cast<Data*>(node->user_data));
  return e.empty() ? kTfLiteOk : Report(context, e);
}

// Dequantize keeps no state: its init returns a non-null token so that
// a null user_data always means "init did not run".
void* NoStateInit(const uint8_t*, size_t, const OpConfig&) { return &g_decode_count; }
void NoStateFree(void*) {}

const OpKernel kOps[] = {
    {"LceQuantize", QuantizeInit, FreeData<OpConfig>,
     PrepareWithData<OpConfig, QuantizePrepareImpl>, QuantizeEval},
    {"LceDequantize", NoStateInit, NoStateFree, PrepareWith<DequantizePrepareImpl>,
     DequantizeEval},
    {"LceBconv2d", InitParsed<BConvOpData, BConvOptions, ParseBConvOptions>,
     FreeData<BConvOpData>, BConvPrepare, BConvEval},
    {"LceBMaxPool2d", InitParsed<MaxPoolOpData, MaxPoolOptions, ParseMaxPoolOptions>,
     FreeData<MaxPoolOpData>, PrepareWithData<MaxPoolOpData, MaxPoolPrepareImpl>, MaxPoolEval},
    {"BitliteDecodeWeights", DecodeInit, FreeData<DecodeOpData>, DecodePrepare, DecodeEval},
    {"BitliteKbitBconv2d", InitParsed<KbitOpData, KbitOptions, ParseKbitOptions>,
     FreeData<KbitOpData>, KbitPrepare, KbitEval},
    {"BitliteKbitQuantize", KbitQuantizeInit, FreeData<KbitQuantizeOpData>,
     PrepareWithData<KbitQuantizeOpData, KbitQuantizePrepareImpl>, KbitQuantizeEval},
};

}  // namespace

const OpKernel* FindOp(const char* custom_name) {
  if (custom_name == nullptr) return nullptr;
  for (const OpKernel& op : kOps)
    if (std::strcmp(op.name, custom_name) == 0) return &op;
  return nullptr;
}

long DecodeCount() { return g_decode_count.load(); }

}  // namespace bitlite

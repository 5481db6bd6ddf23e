// libFuzzer harness for the ops as the delegate runs them (runtime/src/ops.cc): each
// input describes one node of one of the five ops — every input and output tensor's
// presence, type, rank, dims, allocation (constant or arena), byte count (exact, short,
// none, long), sparsity and quantization — plus its custom options and the bytes its
// constant tensors hold. The harness is a minimal host (a TfLiteContext whose
// ResizeTensor allocates exactly the bytes a tensor needs, so ASan sees every bound),
// runs the op's init and prepare, and when prepare accepts, invoke.
//
// Properties checked on every execution (a violation aborts, i.e. is a crash):
//   * a failing prepare or invoke reported a message (context->ReportError);
//   * once prepare accepted a node and every tensor got exactly its bytes, invoke
//     succeeds (models fail at construction, never at invoke);
//   * LceBconv2d: every optimized kernel this CPU runs (avx512, avx2, neon, generic)
//     writes exactly the bytes of the reference convolution, at 1 or 2 threads;
//   * LceQuantize (float input): the packed words equal a bit-by-bit x < 0 loop.
// Memory errors and undefined behaviour are caught by ASan + UBSan.
//
// Input layout: byte 0 picks the op (mod 5) and flags; 6 tensor descriptors of 8 bytes
// (inputs 0..4, output); one length byte L; L bytes of custom options; the rest is the
// data pool that constant tensors are filled from (cycled). runtime/fuzz/run_fuzz.sh
// builds this with clang and writes the seed corpus (valid nodes of every op).
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../src/bgemm.h"
#include "../src/ops.h"
#include "../src/tflite_abi.h"

using namespace bitlite;

namespace {

constexpr size_t kMaxTensorBytes = 1 << 18;  // larger tensors: prepare only, no invoke
constexpr size_t kMaxConstantBytes = 1 << 16;  // a constant's buffer is cut to this
// Binary MACs (in 32-bit words) past which a convolution is prepared but not run: the
// reference convolution is slow, and executions must stay cheap.
constexpr int64_t kMaxConvWork = 1 << 18;
constexpr int kSlots = 6;                    // 5 inputs + 1 output
constexpr int kDescBytes = 8;

struct OpInfo {
  const char* name;
  int inputs;
  TfLiteType natural[kSlots];  // slot types a valid node has (output last)
  int rank[kSlots];
  bool constant[kSlots];
};

const OpInfo kOps[] = {
    {"LceQuantize", 1, {kTfLiteFloat32, kTfLiteNoType, kTfLiteNoType, kTfLiteNoType, kTfLiteNoType,
                        kTfLiteInt32}, {2, 0, 0, 0, 0, 2}, {false}},
    {"LceDequantize", 1, {kTfLiteInt32, kTfLiteNoType, kTfLiteNoType, kTfLiteNoType, kTfLiteNoType,
                          kTfLiteFloat32}, {2, 0, 0, 0, 0, 2}, {false}},
    {"LceBconv2d", 5, {kTfLiteInt32, kTfLiteInt32, kTfLiteFloat32, kTfLiteFloat32, kTfLiteInt32,
                       kTfLiteFloat32}, {4, 4, 1, 1, 1, 4}, {false, true, true, true, true, false}},
    {"LceBMaxPool2d", 1, {kTfLiteInt32, kTfLiteNoType, kTfLiteNoType, kTfLiteNoType,
                          kTfLiteNoType, kTfLiteInt32}, {4, 0, 0, 0, 0, 4}, {false}},
    {"BitliteDecodeWeights", 3, {kTfLiteUInt8, kTfLiteFloat32, kTfLiteFloat32, kTfLiteNoType,
                                 kTfLiteNoType, kTfLiteFloat32}, {1, 1, 1, 0, 0, 2},
     {true, true, true, false, false, false}},
};

const TfLiteType kAnyType[] = {kTfLiteFloat32, kTfLiteInt32, kTfLiteUInt8, kTfLiteInt8,
                               kTfLiteBool,    kTfLiteInt16, kTfLiteInt64, kTfLiteNoType};
const float kScales[] = {0.5f, 0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity(), 1e-30f, 1e30f, 0.1f};
const int32_t kZeroPoints[] = {0, 127, -128, 128, std::numeric_limits<int32_t>::max(),
                               std::numeric_limits<int32_t>::min(), 5, -3};

size_t ElementBytes(TfLiteType t) {
  switch (t) {
    case kTfLiteFloat32: case kTfLiteInt32: return 4;
    case kTfLiteInt64: return 8;
    case kTfLiteInt16: return 2;
    default: return 1;
  }
}

int Dim(uint8_t v) {
  switch (v) {
    case 255: return 0;
    case 254: return -1;
    case 253: return std::numeric_limits<int>::max();
    case 252: return 1 << 20;
    case 251: return 4096;
    case 250: return 65536;
    default: return v < 200 ? 1 + v % 12 : 13 + (v - 200) * 3;  // 1..12, 13..160
  }
}

// Element count, or -1 when negative or past 2^40 (cannot be allocated anyway).
int64_t Count(const TfLiteIntArray* dims) {
  int64_t n = 1;
  for (int i = 0; i < dims->size; ++i) {
    if (dims->data[i] < 0) return -1;
    if (dims->data[i] > 0 && n > (int64_t(1) << 40) / dims->data[i]) return -1;
    n *= dims->data[i];
  }
  return n;
}

TfLiteIntArray* NewDims(int rank) {
  auto* a = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (1 + rank)));
  a->size = rank;
  return a;
}

// The minimal host: tensors whose buffers are malloc'd to exactly their byte count.
struct Host {
  TfLiteContext context{};
  TfLiteTensor tensors[kSlots]{};
  void* buffers[kSlots]{};
  TfLiteAffineQuantization affine[kSlots]{};
  int reported = 0;

  Host() {
    context.tensors = tensors;
    context.tensors_size = kSlots;
    context.ResizeTensor = ResizeTensor;
    context.ReportError = ReportError;
    context.recommended_num_threads = 1;
    context.impl_ = this;
  }
  ~Host() {
    for (int i = 0; i < kSlots; ++i) {
      std::free(buffers[i]);
      std::free(tensors[i].dims);
    }
  }
  // Gives tensor i exactly `bytes` bytes (null for 0), filled from `pool`.
  void Allocate(int i, size_t bytes, const uint8_t* pool, size_t pool_len) {
    std::free(buffers[i]);
    buffers[i] = bytes ? std::malloc(bytes) : nullptr;
    auto* p = static_cast<uint8_t*>(buffers[i]);
    if (pool_len == 0) {
      if (bytes) std::memset(p, 0x5b, bytes);
    } else {
      for (size_t k = 0; k < bytes; k += pool_len)
        std::memcpy(p + k, pool, std::min(pool_len, bytes - k));
    }
    tensors[i].data.raw = buffers[i];
    tensors[i].bytes = bytes;
  }
  static TfLiteStatus ResizeTensor(TfLiteContext* c, TfLiteTensor* t, TfLiteIntArray* dims) {
    Host* h = static_cast<Host*>(c->impl_);
    const int i = static_cast<int>(t - h->tensors);
    std::free(t->dims);
    t->dims = dims;
    const int64_t n = Count(dims);
    if (n < 0 || uint64_t(n) * ElementBytes(t->type) > kMaxTensorBytes) {
      return kTfLiteError;  // as a host out of memory: prepare must fail cleanly
    }
    h->Allocate(i, size_t(n) * ElementBytes(t->type), nullptr, 0);
    return kTfLiteOk;
  }
  static void ReportError(TfLiteContext* c, const char* format, ...) {
    char msg[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(msg, sizeof(msg), format, args);
    va_end(args);
    if (msg[0] != '\0') ++static_cast<Host*>(c->impl_)->reported;
  }
};

struct Node {
  int inputs[1 + 5];
  int outputs[1 + 1];
  TfLiteNode node{};
};

// Builds the node described by `data` into `host`; false when the input is too short.
// `exact` is set when every tensor holds exactly the bytes its dims need.
bool Describe(const uint8_t* data, size_t size, const OpInfo& op, Host* host, Node* n,
              const uint8_t** options, size_t* options_len, bool* exact) {
  if (size < 1 + kSlots * kDescBytes + 1) return false;
  const uint8_t* desc = data + 1;
  const size_t opt_len = std::min<size_t>(data[1 + kSlots * kDescBytes],
                                          size - (2 + kSlots * kDescBytes));
  *options = data + 2 + kSlots * kDescBytes;
  *options_len = opt_len;
  const uint8_t* pool = *options + opt_len;
  const size_t pool_len = size - (2 + kSlots * kDescBytes) - opt_len;
  *exact = true;
  int n_in = 0;
  for (int s = 0; s < kSlots; ++s) {
    const uint8_t* d = desc + s * kDescBytes;
    const bool is_output = s == kSlots - 1;
    const int slot_count = is_output ? 1 : op.inputs;
    TfLiteTensor& t = host->tensors[s];
    t.type = d[1] < 160 && op.natural[s] != kTfLiteNoType ? op.natural[s] : kAnyType[d[1] % 8];
    if (is_output && d[1] >= 120 && d[1] < 160) {  // the other valid output types
      const TfLiteType alt[] = {kTfLiteFloat32, kTfLiteInt8, kTfLiteInt32, kTfLiteBool};
      t.type = alt[d[1] % 4];
    }
    const int rank = d[2] < 200 && op.rank[s] > 0 ? op.rank[s] : d[2] % 10;
    t.dims = NewDims(rank);
    for (int k = 0; k < rank; ++k) t.dims->data[k] = Dim(k < 4 ? d[3 + k] : d[3 + k % 4] ^ 0x5a);
    const uint8_t mode = d[7];
    const bool constant = (op.constant[s] && !(mode & 0x40)) || (!op.constant[s] && (mode & 0x40));
    t.allocation_type = constant ? kTfLiteMmapRo : kTfLiteArenaRw;
    t.sparsity = (mode & 0x80) && (mode & 0x20) ? &host->tensors[s] : nullptr;  // any non-null
    t.params.scale = kScales[(d[0] >> 3) % 8];
    t.params.zero_point = kZeroPoints[(d[0] >> 6) | ((mode >> 2) & 4)];
    if (t.type == kTfLiteInt8 && (d[0] & 4)) {
      t.quantization.type = kTfLiteAffineQuantization;
      t.quantization.params = &host->affine[s];
    }
    if (constant) {  // a constant's buffer: exact, 1 short, empty or 8 long
      const int64_t count = Count(t.dims);
      const uint64_t need = count < 0 ? 0 : uint64_t(count) * ElementBytes(t.type);
      uint64_t bytes = need;
      switch (mode & 3) {
        case 1: bytes = need ? need - 1 : 0; break;
        case 2: bytes = 0; break;
        case 3: bytes = need + 8; break;
      }
      if (bytes > kMaxConstantBytes) bytes = kMaxConstantBytes;
      *exact = *exact && bytes == need && count >= 0;
      host->Allocate(s, size_t(bytes), pool, pool_len);
    }
    // Index kind: the slot's tensor, absent (-1), out of range, or another slot's.
    int index = s;
    switch (d[0] & 3) {
      case 1: index = (d[0] & 0x20) ? -1 : s; break;
      case 2: index = (d[0] & 0x20) ? 1000 : (d[1] % kSlots); break;
      default: break;
    }
    if (is_output) {
      n->outputs[0] = (d[2] & 0x80) && d[2] >= 200 ? 0 : 1;  // 0 outputs, sometimes
      n->outputs[1] = index;
    } else if (s < slot_count) {
      n->inputs[1 + n_in++] = index;
    }
  }
  // An input count other than the op's, sometimes.
  n->inputs[0] = (data[0] & 0x80) ? (data[0] >> 3) % 6 : n_in;
  for (int k = n->inputs[0]; k > n_in; --k) n->inputs[k] = k - 1;
  n->node.inputs = reinterpret_cast<TfLiteIntArray*>(n->inputs);
  n->node.outputs = reinterpret_cast<TfLiteIntArray*>(n->outputs);
  return true;
}

// Arena inputs get their bytes after prepare, as a host's arena does: exactly what
// their dims need, unless the descriptor asks for a short one. False: too large to run.
bool AllocateArena(const uint8_t* data, const Node& n, Host* host, const uint8_t* pool,
                   size_t pool_len, bool* exact) {
  for (int k = 1; k <= n.inputs[0]; ++k) {  // the tensors the node reads
    const int s = n.inputs[k];
    if (s < 0 || s >= kSlots) continue;
    TfLiteTensor& t = host->tensors[s];
    if (t.allocation_type != kTfLiteArenaRw || t.data.raw != nullptr) continue;
    const int64_t count = Count(t.dims);
    if (count < 0) continue;
    const uint64_t need = uint64_t(count) * ElementBytes(t.type);
    if (need > kMaxTensorBytes) return false;
    const bool shorter = (data[1 + s * kDescBytes + 7] & 3) == 1 && need > 0;
    *exact = *exact && !shorter;
    host->Allocate(s, size_t(shorter ? need - 1 : need), pool, pool_len);
  }
  const int o = n.outputs[0] == 1 ? n.outputs[1] : -1;  // the tensor the node writes
  if (o < 0 || o >= kSlots) return true;
  TfLiteTensor& out = host->tensors[o];
  if (out.data.raw == nullptr && (out.allocation_type == kTfLiteArenaRw ||
                                  out.allocation_type == kTfLiteArenaRwPersistent)) {
    const int64_t count = Count(out.dims);
    if (count < 0 || uint64_t(count) * ElementBytes(out.type) > kMaxTensorBytes) return false;
    host->Allocate(o, size_t(count) * ElementBytes(out.type), nullptr, 0);
  }
  return true;
}

struct RunResult {
  bool prepared = false, invoked = false;
  bool float_output = false;
  std::vector<uint8_t> output;
};

// Equal bytes, except that any two float NaNs are equal (their payloads may differ
// between the vectorized and scalar output transforms).
bool SameOutput(const RunResult& a, const RunResult& b) {
  if (a.output.size() != b.output.size()) return false;
  if (!a.float_output) return a.output == b.output;
  for (size_t i = 0; i + 4 <= a.output.size(); i += 4) {
    float x, y;
    std::memcpy(&x, &a.output[i], 4);
    std::memcpy(&y, &b.output[i], 4);
    if (std::memcmp(&x, &y, 4) != 0 && !(std::isnan(x) && std::isnan(y))) return false;
  }
  return true;
}

// init + prepare + invoke of the described node with the given kernel and threads.
RunResult Run(const uint8_t* data, size_t size, const char* kernel, int threads) {
  RunResult r;
  const OpInfo& info = kOps[data[0] % 5];
  const OpKernel* op = FindOp(info.name);
  if (op == nullptr) std::abort();
  Host host;
  Node n;
  const uint8_t* options;
  size_t options_len;
  bool exact;
  if (!Describe(data, size, info, &host, &n, &options, &options_len, &exact)) return r;
  OpConfig config;
  config.num_threads = threads;
  config.kernel = kernel;
  void* user_data = op->init(options, options_len, config);
  n.node.user_data = user_data;
  host.reported = 0;
  const TfLiteStatus prepared = op->prepare(&host.context, &n.node);
  if (prepared != kTfLiteOk && host.reported == 0) {
    std::fprintf(stderr, "%s: prepare failed without a message\n", info.name);
    std::abort();
  }
  r.prepared = prepared == kTfLiteOk;
  const uint8_t* pool = options + options_len;
  const size_t pool_len = size - size_t(pool - data);
  if (r.prepared && data[0] % 5 == 2 && n.outputs[0] == 1 && n.inputs[0] >= 2 &&
      n.inputs[2] >= 0 && n.inputs[2] < kSlots && n.outputs[1] >= 0 && n.outputs[1] < kSlots) {
    const TfLiteTensor& filter = host.tensors[n.inputs[2]];
    const TfLiteTensor& out = host.tensors[n.outputs[1]];
    const int depth = out.dims->size == 4 ? out.dims->data[3] : 0;
    const int64_t pixels = depth > 0 ? Count(out.dims) / depth : 0;
    if (pixels * Count(filter.dims) > kMaxConvWork) r.prepared = false;  // too slow to run
  }
  if (r.prepared && AllocateArena(data, n, &host, pool, pool_len, &exact)) {
    host.reported = 0;
    const TfLiteStatus invoked = op->invoke(&host.context, &n.node);
    if (invoked != kTfLiteOk && host.reported == 0) {
      std::fprintf(stderr, "%s: invoke failed without a message\n", info.name);
      std::abort();
    }
    if (invoked != kTfLiteOk && exact) {
      std::fprintf(stderr, "%s: prepare accepted a well-formed node that invoke refused\n",
                   info.name);
      std::abort();
    }
    r.invoked = invoked == kTfLiteOk;
    const int o = n.outputs[0] == 1 && n.outputs[1] >= 0 && n.outputs[1] < kSlots
                      ? n.outputs[1] : kSlots - 1;
    const TfLiteTensor& out = host.tensors[o];
    r.float_output = out.type == kTfLiteFloat32;
    if (r.invoked && out.data.raw != nullptr)
      r.output.assign(static_cast<const uint8_t*>(out.data.raw),
                      static_cast<const uint8_t*>(out.data.raw) + out.bytes);
    // LceQuantize of floats: the packed words against a bit-by-bit loop.
    const TfLiteTensor& in = host.tensors[0];
    if (r.invoked && data[0] % 5 == 0 && in.type == kTfLiteFloat32 && in.dims->size > 0 &&
        n.inputs[0] == 1 && n.inputs[1] == 0 && n.outputs[1] == kSlots - 1) {
      const int channels = in.dims->data[in.dims->size - 1];
      const int64_t words = (int64_t(channels) + 31) / 32;
      const int64_t rows = channels ? Count(in.dims) / channels : 0;
      std::vector<uint32_t> want(rows > 0 ? size_t(rows * words) : 0, 0);
      for (int64_t row = 0; row < rows; ++row)
        for (int c = 0; c < channels; ++c)
          if (in.data.f[row * channels + c] < 0.0f) want[row * words + c / 32] |= 1u << (c % 32);
      if (r.output.size() != want.size() * 4 ||
          (!want.empty() && std::memcmp(r.output.data(), want.data(), r.output.size()) != 0)) {
        std::fprintf(stderr, "LceQuantize: packed words differ from x < 0\n");
        std::abort();
      }
    }
  }
  op->free(user_data);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 + kSlots * kDescBytes) return 0;
  const int threads = 1 + (data[0] >> 6 & 1);
  const RunResult reference = Run(data, size, "reference", 1);
  if (data[0] % 5 != 2) return 0;
  // LceBconv2d: every optimized kernel this CPU runs must write the reference's bytes.
  static const std::vector<const char*> kernels = [] {
    std::vector<const char*> found;
    for (const char* name : {"avx512", "avx2", "neon", "generic"}) {
      const char* error = nullptr;
      if (SelectKernel(name, &error) != nullptr) found.push_back(name);
    }
    return found;
  }();
  for (const char* kernel : kernels) {
    const RunResult got = Run(data, size, kernel, threads);
    if (got.prepared != reference.prepared || got.invoked != reference.invoked ||
        !SameOutput(got, reference)) {
      std::fprintf(stderr, "LceBconv2d: kernel %s differs from the reference (prepared %d/%d, "
                   "invoked %d/%d, %zu/%zu bytes)\n", kernel, got.prepared, reference.prepared,
                   got.invoked, reference.invoked, got.output.size(), reference.output.size());
      std::abort();
    }
  }
  return 0;
}

// The TFLite delegate (bitlite_delegate.h): claims every node of the ops in ops.h and
// runs each through its own delegate kernel; every other node stays with the host.
//
// How a node becomes ours: the host keeps a custom op it cannot resolve as a
// placeholder registration (prepare == NULL, an invoke that fails) and errors only if
// no delegate claims it. Our Prepare finds those nodes by custom name and calls
// ReplaceNodeSubsetsWithDelegateKernels once per node — one call for all of them would
// merge neighbouring ops into one kernel — and each kernel's init looks the original
// node up (GetNodeAndRegistration) for its custom options and its inputs and outputs
// in their original order, -1 (absent) slots included; the host's own list for the
// kernel holds only the tensors it must keep alive, in its own order.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bgemm.h"
#include "bitlite_delegate.h"
#include "decode_weights.h"
#include "ops.h"
#include "simple_ops.h"
#include "bconv.h"
#include "tflite_abi.h"

namespace bitlite {
namespace {

// ------------------------------------------------------------ small helpers

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using IntArrayPtr = std::unique_ptr<TfLiteIntArray, FreeDeleter>;

IntArrayPtr MakeIntArray(const int* data, int size) {
  auto* a = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (1 + size_t(size))));
  if (a == nullptr) return nullptr;
  a->size = size;
  for (int i = 0; i < size; ++i) a->data[i] = data[i];
  return IntArrayPtr(a);
}

IntArrayPtr CopyIntArray(const TfLiteIntArray* a) {
  return a == nullptr ? MakeIntArray(nullptr, 0) : MakeIntArray(a->data, a->size);
}

std::string Json(const char* s) {
  std::string out = "\"";
  for (const char* p = s ? s : ""; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += *p;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += *p;
    }
  }
  return out + "\"";
}

std::string Json(const TfLiteIntArray* a) {
  std::string out = "[";
  for (int i = 0; a != nullptr && i < a->size; ++i)
    out += (i ? "," : "") + std::to_string(a->data[i]);
  return out + "]";
}

// ------------------------------------------------------------ the delegate's state

struct DelegateState {
  TfLiteDelegate delegate;  // first, so &state->delegate is what the host holds
  OpConfig config;
  std::mutex probe_mutex;
  std::string probe = "{\"prepared\":false}";  // what the last Prepare saw
};

DelegateState* StateOf(const TfLiteDelegate* delegate) {
  return delegate ? static_cast<DelegateState*>(delegate->data_) : nullptr;
}

// Why a claimed node cannot run, by node index, for the kernels that Prepare is
// creating on this thread (their init runs inside ReplaceNodeSubsetsWithDelegateKernels,
// where it reports the problem as its prepare error). Set only during that call.
thread_local const std::map<int, std::string>* t_malformed = nullptr;

// ------------------------------------------------------------ profiling

// BITLITE_PROFILE=<file>: every kernel records each invoke's start and end
// (CLOCK_MONOTONIC ns, the clock of Python's time.monotonic_ns) in memory and
// appends "node op start end" lines to the file when it is freed, so a tool can
// place our ops inside invokes it timed itself and attribute the gaps to the host's
// ops (benchmarks/op_profile.py). Unset: one branch per invoke.
const char* ProfilePath() {
  static const char* path = std::getenv("BITLITE_PROFILE");
  return path != nullptr && *path != '\0' ? path : nullptr;
}

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct ProfileRecords {
  int node = -1;
  std::vector<int64_t> times;  // start, end, start, end...
  void Flush(const char* op) const {
    FILE* f = std::fopen(ProfilePath(), "a");
    if (f == nullptr) return;
    for (size_t i = 0; i + 1 < times.size(); i += 2)
      std::fprintf(f, "%d %s %lld %lld\n", node, op, static_cast<long long>(times[i]),
                   static_cast<long long>(times[i + 1]));
    std::fclose(f);
  }
};

// ------------------------------------------------------------ the delegate kernel

// One per claimed node: the op's own state plus a node that looks like the original.
struct DelegateKernel {
  std::string error;  // reported at prepare (init cannot report)
  const OpKernel* op = nullptr;
  void* op_data = nullptr;
  IntArrayPtr inputs, outputs;
  TfLiteNode view{};  // inputs/outputs above, user_data = op_data
  // No node reads the op's output and it is no model output: the host's list for our
  // kernel leaves it out and the host allocates no memory for it. Nothing can observe
  // it, so invoke skips the op (prepare still validates it).
  bool unread = false;
  std::unique_ptr<ProfileRecords> profile;  // BITLITE_PROFILE set

  ~DelegateKernel() {
    if (profile != nullptr && op != nullptr) profile->Flush(op->name);
    if (op != nullptr && op_data != nullptr) op->free(op_data);
  }
};

void* KernelInitImpl(TfLiteContext* context, const char* buffer) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* k = new DelegateKernel;
  TfLiteNode* node = nullptr;
  TfLiteRegistration* reg = nullptr;
  const DelegateState* state = params ? StateOf(params->delegate) : nullptr;
  if (state == nullptr || params->nodes_to_replace == nullptr ||
      params->nodes_to_replace->size != 1 ||
      context->GetNodeAndRegistration(context, params->nodes_to_replace->data[0], &node,
                                      &reg) != kTfLiteOk ||
      node == nullptr || reg == nullptr) {
    k->error = "bitlite delegate: the host gave a kernel no single node to run";
    return k;
  }
  k->op = FindOp(reg->custom_name);
  if (k->op == nullptr) {
    k->error = std::string("bitlite delegate: no kernel for ") +
               (reg->custom_name ? reg->custom_name : "?");
    return k;
  }
  const int index = params->nodes_to_replace->data[0];
  if (t_malformed != nullptr && t_malformed->count(index)) {
    k->error = t_malformed->at(index);
    return k;
  }
  k->inputs = CopyIntArray(node->inputs);
  k->outputs = CopyIntArray(node->outputs);
  const auto* options = static_cast<const uint8_t*>(node->custom_initial_data);
  const size_t length =
      node->custom_initial_data_size > 0 ? size_t(node->custom_initial_data_size) : 0;
  try {
    k->op_data = k->op->init(options, length, state->config);
  } catch (...) {  // bad_alloc: reported at prepare
    k->error = "bitlite delegate: out of memory creating a kernel";
  }
  k->view.inputs = k->inputs.get();
  k->view.outputs = k->outputs.get();
  k->view.user_data = k->op_data;
  k->view.custom_initial_data = node->custom_initial_data;
  k->view.custom_initial_data_size = node->custom_initial_data_size;
  if (ProfilePath() != nullptr) {
    k->profile.reset(new ProfileRecords);
    k->profile->node = index;
    k->profile->times.reserve(1 << 14);
  }
  return k;
}

// The host's callbacks below are C frames: no exception may leave them. An allocation
// failure (bad_alloc) becomes a null kernel or an error status with a message.
void* KernelInit(TfLiteContext* context, const char* buffer, size_t) {
  try {
    return KernelInitImpl(context, buffer);
  } catch (...) {
    return nullptr;  // KernelPrepare reports it
  }
}

void KernelFree(TfLiteContext*, void* buffer) { delete static_cast<DelegateKernel*>(buffer); }

// A kernel whose init completed: its op, its state and its node view.
bool Ready(const DelegateKernel* k) {
  return k != nullptr && k->error.empty() && k->op != nullptr && k->op_data != nullptr &&
         k->inputs != nullptr && k->outputs != nullptr;
}

TfLiteStatus Fail(TfLiteContext* context, const char* why) {
  context->ReportError(context, "%s", why);
  return kTfLiteError;
}

bool Contains(const TfLiteIntArray* list, int tensor) {
  for (int i = 0; list != nullptr && i < list->size; ++i)
    if (list->data[i] == tensor) return true;
  return false;
}

// True when the host keeps none of `ours` (the op's outputs) in `kept` (its kernel's).
bool NoneKept(const TfLiteIntArray* ours, const TfLiteIntArray* kept) {
  for (int i = 0; i < ours->size; ++i)
    if (Contains(kept, ours->data[i])) return false;
  return true;
}

TfLiteStatus KernelPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* k = node ? static_cast<DelegateKernel*>(node->user_data) : nullptr;
  if (k != nullptr && !k->error.empty()) return Fail(context, k->error.c_str());
  if (!Ready(k)) return Fail(context, "bitlite delegate: out of memory creating a kernel");
  k->unread = NoneKept(k->outputs.get(), node->outputs);
  try {
    return k->op->prepare(context, &k->view);
  } catch (...) {
    return Fail(context, "bitlite delegate: out of memory preparing an op");
  }
}

TfLiteStatus KernelInvoke(TfLiteContext* context, TfLiteNode* node) {
  auto* k = node ? static_cast<DelegateKernel*>(node->user_data) : nullptr;
  if (!Ready(k)) return Fail(context, "bitlite delegate: invoke of a kernel that failed prepare");
  if (k->unread) return kTfLiteOk;
  try {  // the kernels do not throw (nor allocate); this guards the C frames regardless
    if (k->profile == nullptr) return k->op->invoke(context, &k->view);
    const int64_t start = MonotonicNs();
    const TfLiteStatus status = k->op->invoke(context, &k->view);
    k->profile->times.push_back(start);  // may allocate past the reserve: profiling only
    k->profile->times.push_back(MonotonicNs());
    return status;
  } catch (...) {
    return Fail(context, "bitlite delegate: an op failed with an exception");
  }
}

const char* KernelProfilingString(const TfLiteContext*, const TfLiteNode* node) {
  const auto* k = static_cast<const DelegateKernel*>(node->user_data);
  return k && k->op ? k->op->name : "bitlite";
}

constexpr const char* kKernelName = "BitliteDelegate";

TfLiteRegistration KernelRegistration() {
  TfLiteRegistration r;
  std::memset(&r, 0, sizeof(r));  // registration_external, async_kernel... all unset
  r.init = KernelInit;
  r.free = KernelFree;
  r.prepare = KernelPrepare;
  r.invoke = KernelInvoke;
  r.profiling_string = KernelProfilingString;
  r.builtin_code = kTfLiteBuiltinDelegate;
  r.custom_name = kKernelName;
  r.version = 1;
  return r;
}

// ------------------------------------------------------------ Prepare

std::string TensorJson(const TfLiteContext* context, int index) {
  const TfLiteTensor& t = context->tensors[index];
  char quant[96];
  std::snprintf(quant, sizeof(quant), "\"scale\":%.9g,\"zero_point\":%d", t.params.scale,
                t.params.zero_point);
  return "\"" + std::to_string(index) + "\":{\"name\":" + Json(t.name) +
         ",\"type\":" + std::to_string(t.type) + ",\"dims\":" + Json(t.dims) +
         ",\"bytes\":" + std::to_string(t.bytes) +
         ",\"allocation_type\":" + std::to_string(t.allocation_type) +
         ",\"quantization_type\":" + std::to_string(t.quantization.type) +
         ",\"sparse\":" + (t.sparsity != nullptr ? "true" : "false") + "," + quant + "}";
}

// One claimed node as the host declared it (before we replaced it).
std::string ClaimedJson(int index, const TfLiteNode* node, const TfLiteRegistration* reg) {
  return "{\"node\":" + std::to_string(index) + ",\"op\":" + Json(reg->custom_name) +
         ",\"builtin_code\":" + std::to_string(reg->builtin_code) +
         ",\"version\":" + std::to_string(reg->version) +
         ",\"placeholder\":" +
         (reg->prepare == nullptr && reg->invoke != nullptr ? "true" : "false") +
         ",\"custom_options_size\":" + std::to_string(node->custom_initial_data_size) +
         ",\"inputs\":" + Json(node->inputs) + ",\"outputs\":" + Json(node->outputs) + "}";
}

// The host's copy of our registration on a kernel node, read back.
std::string KernelJson(int index, const TfLiteNode* node, const TfLiteRegistration* reg,
                       const TfLiteDelegate* delegate) {
  const auto* k = static_cast<const DelegateKernel*>(node->user_data);
  return "{\"node\":" + std::to_string(index) + ",\"name\":" + Json(reg->custom_name) +
         ",\"op\":" + Json(k && k->op ? k->op->name : "") +
         ",\"builtin_code\":" + std::to_string(reg->builtin_code) +
         ",\"version\":" + std::to_string(reg->version) +
         ",\"ours\":" +
         (reg->invoke == KernelInvoke && reg->prepare == KernelPrepare ? "true" : "false") +
         ",\"node_delegate_is_us\":" + (node->delegate == delegate ? "true" : "false") +
         ",\"inputs\":" + Json(node->inputs) + ",\"outputs\":" + Json(node->outputs) + "}";
}

// How many nodes of `nodes` write each tensor.
std::vector<int> WriterCounts(TfLiteContext* context, const TfLiteIntArray* nodes) {
  std::vector<int> writers(context->tensors_size, 0);
  for (int i = 0; i < nodes->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, nodes->data[i], &node, &reg) != kTfLiteOk ||
        node == nullptr)
      continue;
    for (int j = 0; node->outputs != nullptr && j < node->outputs->size; ++j)
      if (node->outputs->data[j] >= 0 && size_t(node->outputs->data[j]) < writers.size())
        ++writers[node->outputs->data[j]];
  }
  return writers;
}

// "" or why a claimed node's graph is malformed: a tensor it reads or writes that more
// than one node writes. The host prepares every node before any runs, so the last
// writer's prepare leaves a shape that the other ops' invoke does not match (found by
// the model-level fuzzer: invoke failures after prepare had accepted).
std::string CheckOneWriter(const TfLiteNode* node, const TfLiteRegistration* reg,
                           const std::vector<int>& writers) {
  for (const TfLiteIntArray* list : {node->inputs, node->outputs})
    for (int j = 0; list != nullptr && j < list->size; ++j) {
      const int t = list->data[j];
      if (t >= 0 && size_t(t) < writers.size() && writers[t] > 1)
        return std::string(reg->custom_name) + ": " +
               (list == node->outputs ? "output" : "input") + " tensor " + std::to_string(t) +
               " is written by " + std::to_string(writers[t]) + " ops (a tensor has one writer)";
    }
  return "";
}

TfLiteStatus DelegatePrepareImpl(TfLiteContext* context, TfLiteDelegate* delegate) {
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || plan == nullptr)
    return kTfLiteError;
  const IntArrayPtr nodes = CopyIntArray(plan);  // the plan changes as we replace nodes
  if (nodes == nullptr) return kTfLiteError;
  std::vector<int> claimed;
  std::map<int, std::string> malformed;
  const std::vector<int> writers = WriterCounts(context, nodes.get());
  std::string claimed_json, tensors_json;
  for (int i = 0; i < nodes->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, nodes->data[i], &node, &reg) != kTfLiteOk ||
        node == nullptr || reg == nullptr)
      return kTfLiteError;
    if (reg->builtin_code != kTfLiteBuiltinCustom || FindOp(reg->custom_name) == nullptr)
      continue;
    claimed.push_back(nodes->data[i]);
    std::string why = CheckOneWriter(node, reg, writers);
    if (!why.empty()) malformed[nodes->data[i]] = std::move(why);
    claimed_json += (claimed.size() > 1 ? "," : "") + ClaimedJson(nodes->data[i], node, reg);
    for (const TfLiteIntArray* list : {node->inputs, node->outputs})
      for (int j = 0; list != nullptr && j < list->size; ++j)
        if (list->data[j] >= 0 && size_t(list->data[j]) < context->tensors_size)
          tensors_json += (tensors_json.empty() ? "" : ",") + TensorJson(context, list->data[j]);
  }
  const TfLiteRegistration registration = KernelRegistration();
  {
    struct Handoff {  // unset however the loop ends (an exception included)
      explicit Handoff(const std::map<int, std::string>* m) { t_malformed = m; }
      ~Handoff() { t_malformed = nullptr; }
    } handoff(&malformed);
    for (int index : claimed) {
      const IntArrayPtr one = MakeIntArray(&index, 1);
      if (one == nullptr ||
          context->ReplaceNodeSubsetsWithDelegateKernels(context, registration, one.get(),
                                                         delegate) != kTfLiteOk)
        return kTfLiteError;
    }
  }
  std::string kernels_json;
  if (context->GetExecutionPlan(context, &plan) == kTfLiteOk && plan != nullptr) {
    for (int i = 0; i < plan->size; ++i) {
      TfLiteNode* node = nullptr;
      TfLiteRegistration* reg = nullptr;
      if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk ||
          node == nullptr || reg == nullptr)
        continue;
      if (reg->init == KernelInit || node->delegate == delegate)
        kernels_json += (kernels_json.empty() ? "" : ",") +
                        KernelJson(plan->data[i], node, reg, delegate);
    }
  }
  DelegateState* state = StateOf(delegate);
  const std::string probe =
      "{\"prepared\":true,\"context\":{\"tensors_size\":" + std::to_string(context->tensors_size) +
      ",\"recommended_num_threads\":" + std::to_string(context->recommended_num_threads) +
      ",\"plan_size\":" + std::to_string(nodes->size) + "},\"claimed\":[" + claimed_json +
      "],\"tensors\":{" + tensors_json + "},\"kernels\":[" + kernels_json +
      "],\"sizes\":{\"pointer\":" + std::to_string(sizeof(void*)) +
      ",\"TfLiteTensor\":" + std::to_string(sizeof(TfLiteTensor)) +
      ",\"TfLiteRegistration\":" + std::to_string(sizeof(TfLiteRegistration)) +
      ",\"TfLiteDelegate\":" + std::to_string(sizeof(TfLiteDelegate)) + "}}";
  std::lock_guard<std::mutex> lock(state->probe_mutex);
  state->probe = probe;
  return kTfLiteOk;
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  if (StateOf(delegate) == nullptr) return kTfLiteError;
  try {
    return DelegatePrepareImpl(context, delegate);
  } catch (...) {  // bad_alloc building the node lists or the probe
    return Fail(context, "bitlite delegate: out of memory in Prepare");
  }
}

// ------------------------------------------------------------ creation

thread_local std::string g_last_error;

// "" or why `kernel` cannot run here.
std::string CheckKernel(const char* kernel) {
  if (kernel == nullptr) return "";
  const char* error = nullptr;
  return SelectKernel(kernel, &error) ? "" : std::string("bitlite: kernel option: ") + error;
}

TfLiteDelegate* Create(const BitliteDelegateOptions& options) {
  g_last_error.clear();
  if (options.num_threads < 0) {
    g_last_error = "bitlite: num_threads must be >= 0";
    return nullptr;
  }
  g_last_error = CheckKernel(options.kernel);
  if (!g_last_error.empty()) return nullptr;
  auto* state = new DelegateState;
  std::memset(&state->delegate, 0, sizeof(state->delegate));
  state->delegate.data_ = state;
  state->delegate.Prepare = DelegatePrepare;
  state->delegate.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  state->config.num_threads = options.num_threads;
  state->config.kernel = options.kernel ? options.kernel : "";
  state->config.threads_seen = std::make_shared<std::atomic<int>>(0);
  return &state->delegate;
}

// Parses one plugin option into `options` (kernel points into `kernel_storage`).
std::string ParsePluginOption(const char* key, const char* value, BitliteDelegateOptions* options,
                              std::string* kernel_storage) {
  const std::string k = key ? key : "", v = value ? value : "";
  if (k == "num_threads") {
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0 || n > 1024)
      return "bitlite: num_threads must be an integer in 0..1024 (got '" + v + "')";
    options->num_threads = static_cast<int>(n);
    return "";
  }
  if (k == "kernel") {
    *kernel_storage = v;
    options->kernel = kernel_storage->c_str();
    return "";
  }
  return "bitlite: unknown delegate option '" + k + "' (expected num_threads, kernel)";
}

}  // namespace
}  // namespace bitlite

extern "C" {

BitliteDelegateOptions BitliteDelegateOptionsDefault(void) {
  BitliteDelegateOptions options;
  options.num_threads = 0;
  options.kernel = nullptr;
  return options;
}

TfLiteDelegate* BitliteDelegateCreate(const BitliteDelegateOptions* options) {
  try {
    return bitlite::Create(options ? *options : BitliteDelegateOptionsDefault());
  } catch (...) {
    return nullptr;  // out of memory (g_last_error may not be settable either)
  }
}

void BitliteDelegateDelete(TfLiteDelegate* delegate) { delete bitlite::StateOf(delegate); }

const char* BitliteDelegateLastError(void) { return bitlite::g_last_error.c_str(); }

const char* BitliteKernelName(const char* kernel) {
  const char* error = nullptr;
  const bitlite::BgemmKernel* k =
      bitlite::SelectKernel(kernel ? kernel : std::getenv("BITLITE_KERNEL"), &error);
  return k ? k->name : "invalid";
}

TfLiteDelegate* tflite_plugin_create_delegate(char** options_keys, char** options_values,
                                              size_t num_options,
                                              void (*report_error)(const char*)) {
  try {
    BitliteDelegateOptions options = BitliteDelegateOptionsDefault();
    std::string kernel, error;
    for (size_t i = 0; i < num_options && error.empty(); ++i)
      error = bitlite::ParsePluginOption(options_keys ? options_keys[i] : nullptr,
                                         options_values ? options_values[i] : nullptr,
                                         &options, &kernel);
    TfLiteDelegate* delegate = error.empty() ? BitliteDelegateCreate(&options) : nullptr;
    if (delegate == nullptr && report_error != nullptr)
      report_error(error.empty() ? BitliteDelegateLastError() : error.c_str());
    return delegate;
  } catch (...) {
    if (report_error != nullptr) report_error("bitlite: out of memory creating the delegate");
    return nullptr;
  }
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { BitliteDelegateDelete(delegate); }

size_t BitliteDelegateProbe(const TfLiteDelegate* delegate, char* buffer, size_t length) {
  bitlite::DelegateState* state = bitlite::StateOf(delegate);
  if (state == nullptr) return 0;
  try {
    std::string probe;
    {
      std::lock_guard<std::mutex> lock(state->probe_mutex);
      probe = state->probe;
    }
    probe.insert(probe.size() - 1, ",\"threads_seen\":" +
                                       std::to_string(state->config.threads_seen->load()));
    if (buffer != nullptr && length > 0) std::snprintf(buffer, length, "%s", probe.c_str());
    return probe.size() + 1;
  } catch (...) {
    return 0;
  }
}

// ------------------------------------------------------------ internal, for Python tests

// How many times BitliteDecodeWeights has decoded a weight tensor in this process.
BITLITE_EXPORT long bitlite_decode_count(void) { return bitlite::DecodeCount(); }

// Validates custom options the way prepare does (for tests and fuzzing). op: 0 =
// LceBconv2d, 1 = LceBMaxPool2d, 2 = BitliteDecodeWeights. Writes the message (or "")
// to `err`; returns 0 when valid.
BITLITE_EXPORT int bitlite_check_options(int op, const uint8_t* buffer, size_t length, char* err,
                                         size_t err_len) {
  std::string e;
  try {
  if (op == 0) {
    bitlite::BConvOptions o;
    e = bitlite::ParseBConvOptions(buffer, length, &o);
  } else if (op == 1) {
    bitlite::MaxPoolOptions o;
    e = bitlite::ParseMaxPoolOptions(buffer, length, &o);
  } else {
    bitlite::DecodeOptions o;
    e = bitlite::ParseDecodeOptions(buffer, length, &o);
  }
  } catch (...) {
    e = "out of memory";
  }
  if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", e.c_str());
  return e.empty() ? 0 : 1;
}

}  // extern "C"

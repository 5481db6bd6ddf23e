// The ops the delegate runs: LCE's four (LceQuantize, LceDequantize, LceBconv2d,
// LceBMaxPool2d) and bitlite's BitliteDecodeWeights, as kernels over TFLite's C
// structs. The delegate (delegate.cc) hands each one a node that holds the original
// op's inputs and outputs, so these kernels are written as ordinary custom ops.
//
// The model is untrusted input. Prepare validates every input and output tensor of the
// node: index, type, rank and dims, no sparsity (TFLite does not check a sparse
// constant's buffer size), a constant's buffer holding all of its elements, int8
// quantization in range (per-tensor, finite scale > 0, zero point in [-128, 127]),
// outputs neither constant nor one of the op's inputs; every failure is reported
// through context->ReportError with a message naming the op and the problem, so a
// model fails at construction. Eval re-checks, cheaply, that each tensor it reads or
// writes holds the bytes prepare planned for; it allocates nothing (scratch is made at
// prepare) and throws nothing.
#ifndef BITLITE_OPS_H_
#define BITLITE_OPS_H_

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "tflite_abi.h"

namespace bitlite {

// Settings of one delegate instance that reach the kernels.
struct OpConfig {
  int num_threads = 0;  // 0: the host's recommended_num_threads
  std::string kernel;   // "": BITLITE_KERNEL (read at every prepare), else the CPU's best
  // The thread count the last binary convolution ran with (the delegate's probe
  // reports it: tests check that each delegate instance keeps its own).
  std::shared_ptr<std::atomic<int>> threads_seen;
};

struct OpKernel {
  const char* name;  // the custom op name in the model
  // `options`: the node's custom options. Never fails: a parse error is kept in the
  // returned data and reported at prepare, where the host shows it to the user.
  void* (*init)(const uint8_t* options, size_t length, const OpConfig& config);
  void (*free)(void* data);
  TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*);  // node->user_data: init's result
  TfLiteStatus (*invoke)(TfLiteContext*, TfLiteNode*);
};

// The kernel for a custom op name, or nullptr for ops we do not run.
const OpKernel* FindOp(const char* custom_name);

// Decodes done by BitliteDecodeWeights since the library was loaded (tests check
// that each op decodes once per prepare).
long DecodeCount();

}  // namespace bitlite

#endif  // BITLITE_OPS_H_

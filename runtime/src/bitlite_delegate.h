/* bitlite's TFLite delegate: Larq Compute Engine's binary ops (LceQuantize,
 * LceDequantize, LceBconv2d, LceBMaxPool2d) and bitlite's BitliteDecodeWeights on any
 * TFLite build — LiteRT, tflite-runtime, TensorFlow's tf.lite, Android's LiteRT —
 * through TFLite's public C structs only.
 *
 * The host runtime keeps custom ops it has no kernel for as placeholders; the
 * delegate claims every node of those five ops (one delegate kernel per node) and
 * leaves every other node to the host, so XNNPACK or the builtin kernels still run
 * the rest. Apply it before any other delegate (Python: `experimental_delegates`,
 * C++: `InterpreterBuilder::AddDelegate` or `ModifyGraphWithDelegate` first).
 *
 * C / C++ / JNI:
 *
 *   #include "tensorflow/lite/c/common.h"   // TfLiteDelegate
 *   #include "bitlite_delegate.h"
 *   BitliteDelegateOptions options = BitliteDelegateOptionsDefault();
 *   options.num_threads = 4;
 *   TfLiteDelegate* delegate = BitliteDelegateCreate(&options);
 *   if (!delegate) fprintf(stderr, "%s\n", BitliteDelegateLastError());
 *   ... add it to the interpreter, run, destroy the interpreter ...
 *   BitliteDelegateDelete(delegate);       // after every interpreter using it
 *
 * Python: `tf.lite.experimental.load_delegate(path, {"num_threads": "4"})` (or
 * LiteRT's / tflite-runtime's load_delegate) calls tflite_plugin_create_delegate;
 * bitlite_runtime.delegate() does that for you.
 *
 * Errors in a model (an unsupported option, a malformed tensor) are reported by the
 * host when it prepares the graph (AllocateTensors), with a message naming the op and
 * the problem; never at invoke, never as wrong numbers.
 */
#ifndef BITLITE_DELEGATE_H_
#define BITLITE_DELEGATE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define BITLITE_EXPORT __declspec(dllexport)
#else
#define BITLITE_EXPORT __attribute__((visibility("default")))
#endif

struct TfLiteDelegate; /* TFLite's, from tensorflow/lite/core/c/common.h */

typedef struct BitliteDelegateOptions {
  /* Threads for binary convolutions; 0 (default): the interpreter's own thread count. */
  int num_threads;
  /* Binary-GEMM kernel: "auto", "reference" (the direct convolution oracle),
   * "generic", "avx2", "avx512" or "neon", as this build and CPU allow. NULL (default):
   * the BITLITE_KERNEL environment variable at prepare, else the CPU's best. */
  const char* kernel;
} BitliteDelegateOptions;

BITLITE_EXPORT BitliteDelegateOptions BitliteDelegateOptionsDefault(void);

/* A new delegate (options copied; NULL: defaults), or NULL with the reason in
 * BitliteDelegateLastError() (e.g. a kernel this CPU cannot run). One delegate may
 * serve several interpreters; it must outlive all of them. */
BITLITE_EXPORT struct TfLiteDelegate* BitliteDelegateCreate(const BitliteDelegateOptions* options);

BITLITE_EXPORT void BitliteDelegateDelete(struct TfLiteDelegate* delegate);

/* Why the last BitliteDelegateCreate on this thread returned NULL ("" otherwise). */
BITLITE_EXPORT const char* BitliteDelegateLastError(void);

/* The binary-GEMM kernel a prepare would pick now with `kernel` (NULL: as the default
 * options do): "avx512", "avx2", "neon", "generic", "reference", or "invalid". */
BITLITE_EXPORT const char* BitliteKernelName(const char* kernel);

/* TFLite's external-delegate plugin ABI (tflite::delegates::ExternalDelegate, Python
 * load_delegate). Option keys: "num_threads" (integer >= 0), "kernel" (as above).
 * An unknown key or a bad value is reported through report_error; returns NULL. */
BITLITE_EXPORT struct TfLiteDelegate* tflite_plugin_create_delegate(
    char** options_keys, char** options_values, size_t num_options,
    void (*report_error)(const char*));
BITLITE_EXPORT void tflite_plugin_destroy_delegate(struct TfLiteDelegate* delegate);

/* Diagnostics (tests, bug reports): writes JSON describing what the delegate saw in its
 * last Prepare — the host's context, every node it claimed (op, registration, inputs,
 * outputs, their tensors) and the kernels the host created for them — into `buffer`
 * (NUL-terminated, truncated to `length`). Returns the full length it needed. */
BITLITE_EXPORT size_t BitliteDelegateProbe(const struct TfLiteDelegate* delegate, char* buffer,
                                           size_t length);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* BITLITE_DELEGATE_H_ */

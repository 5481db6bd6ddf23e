// Declarations of TensorFlow Lite's public C structs (tensorflow/lite/core/c/common.h),
// laid out as every runtime we support has them: tflite-runtime 2.14, TensorFlow
// 2.16's tf.lite, LiteRT (ai-edge-litert) 2.x and Android's LiteRT. The delegate
// touches nothing else of the host: no C++ symbol, no exported C function, so one
// library serves every build.
//
// Fields are declared only as far as we read them, except where the host copies or
// reads a struct we own: TfLiteRegistration (passed by value to
// ReplaceNodeSubsetsWithDelegateKernels) and TfLiteDelegate (read by the host) are
// declared whole. TfLiteTensor is declared whole because context->tensors is an
// array of them. The static_asserts pin the sizes; tests/runtime/test_abi.py checks
// the offsets against each installed runtime through the delegate's probe.
#ifndef BITLITE_TFLITE_ABI_H_
#define BITLITE_TFLITE_ABI_H_

#include <cstddef>
#include <cstdint>

extern "C" {

// Every enum has int as its fixed underlying type (as C gives it): the host may store
// values we do not declare (newer types: FLOAT64, INT4...), and loading one into an
// enum without a fixed type is undefined behaviour (UBSan, found by model fuzzing).
typedef enum : int { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef enum : int {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef enum : int {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
} TfLiteAllocationType;

typedef enum : int {
  kTfLiteNoQuantization = 0,
  kTfLiteAffineQuantization = 1,
} TfLiteQuantizationType;

// BuiltinOperator codes we compare against (tensorflow/lite/builtin_ops.h).
enum { kTfLiteBuiltinCustom = 32, kTfLiteBuiltinDelegate = 51 };

// TfLiteDelegateFlags: without AllowDynamicTensors the host never calls our
// Prepare on a graph that still holds unresolved custom ops.
enum { kTfLiteDelegateFlagsAllowDynamicTensors = 1 };

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct {
  TfLiteQuantizationType type;
  void* params;  // TfLiteAffineQuantization* when type is kTfLiteAffineQuantization
} TfLiteQuantization;

typedef struct TfLiteFloatArray {
  int size;
  float data[];
} TfLiteFloatArray;

// What TfLiteQuantization::params points to for affine quantization: one scale and
// zero point per tensor, or per channel along quantized_dimension.
typedef struct {
  TfLiteFloatArray* scale;
  TfLiteIntArray* zero_point;
  int32_t quantized_dimension;
} TfLiteAffineQuantization;

typedef union {
  int32_t* i32;
  int8_t* int8;
  float* f;
  uint8_t* uint8;
  bool* b;
  void* raw;
  const void* raw_const;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  void* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  // TfLiteSparsity*, non-null for a sparse tensor: TFLite then skips its own check that
  // a constant's buffer holds every element, so the kernels refuse such tensors.
  void* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

struct TfLiteDelegate;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;  // set by the host on nodes a delegate owns
  // (might_have_side_effect follows; unused)
} TfLiteNode;

struct TfLiteRegistration;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext*, TfLiteIntArray** plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext*, TfLiteTensor*, TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext*, int, int*);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext*, int node_index,
                                         TfLiteNode** node, struct TfLiteRegistration** reg);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext*,
                                                        struct TfLiteRegistration registration,
                                                        const TfLiteIntArray* nodes_to_replace,
                                                        struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  // (many more fields follow; unused)
} TfLiteContext;

// Declared whole and zero-filled where unset: the host copies it by value, and a
// non-NULL registration_external / async_kernel would send it down other paths.
typedef struct TfLiteRegistration {
  void* (*init)(TfLiteContext*, const char* buffer, size_t length);
  void (*free)(TfLiteContext*, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext*, TfLiteNode*);
  TfLiteStatus (*invoke)(TfLiteContext*, TfLiteNode*);
  const char* (*profiling_string)(const TfLiteContext*, const TfLiteNode*);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* (*async_kernel)(TfLiteContext*, TfLiteNode*);
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext*, struct TfLiteDelegate*);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext*, struct TfLiteDelegate*, int,
                                       TfLiteTensor*);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext*, struct TfLiteDelegate*, int,
                                     TfLiteTensor*);
  void (*FreeBufferHandle)(TfLiteContext*, struct TfLiteDelegate*, int*);
  int64_t flags;
  void* opaque_delegate_builder;  // NULL: a classic (non-opaque) delegate
} TfLiteDelegate;

// What a delegate kernel's init receives as `buffer` (length 0).
typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

}  // extern "C"

// Sizes and offsets every supported runtime has (LP64 and 32-bit Arm).
static_assert(sizeof(TfLiteType) == 4 && sizeof(TfLiteStatus) == 4, "C enums are int-sized");
static_assert(sizeof(TfLiteTensor) == (sizeof(void*) == 8 ? 112 : 64), "TfLiteTensor size");
static_assert(offsetof(TfLiteTensor, quantization) == (sizeof(void*) == 8 ? 80 : 48),
              "TfLiteTensor::quantization offset");
static_assert(offsetof(TfLiteTensor, sparsity) == (sizeof(void*) == 8 ? 96 : 56),
              "TfLiteTensor::sparsity offset");
static_assert(sizeof(TfLiteRegistration) == (sizeof(void*) == 8 ? 88 : 48),
              "TfLiteRegistration size");
static_assert(sizeof(TfLiteDelegate) == (sizeof(void*) == 8 ? 56 : 40), "TfLiteDelegate size");
static_assert(offsetof(TfLiteDelegate, flags) == (sizeof(void*) == 8 ? 40 : 24),
              "TfLiteDelegate::flags offset");
static_assert(offsetof(TfLiteRegistration, custom_name) == (sizeof(void*) == 8 ? 48 : 24),
              "TfLiteRegistration::custom_name offset");
static_assert(offsetof(TfLiteContext, recommended_num_threads) == 9 * sizeof(void*),
              "TfLiteContext::recommended_num_threads offset");
static_assert(offsetof(TfLiteNode, delegate) == (sizeof(void*) == 8 ? 64 : 32),
              "TfLiteNode::delegate offset");

#endif  // BITLITE_TFLITE_ABI_H_

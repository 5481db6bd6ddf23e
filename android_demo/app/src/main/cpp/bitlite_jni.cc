// JNI shim: org.bitlite.demo.BitliteNative's native methods over bitlite_delegate.h's C API.
// The handle it returns is the TfLiteDelegate* that LiteRT's Java Interpreter takes from
// Delegate.getNativeHandle() (BitliteDelegate.kt). Nothing here knows TFLite's structs.
#include <jni.h>

#include <cstdint>

#include "bitlite_delegate.h"

namespace {

void Throw(JNIEnv* env, const char* java_class, const char* message) {
  jclass cls = env->FindClass(java_class);
  if (cls != nullptr) env->ThrowNew(cls, message);  // else FindClass has thrown already
}

// A Java String as UTF-8 for the duration of one call (null stays null).
class Utf8 {
 public:
  Utf8(JNIEnv* env, jstring s)
      : env_(env), s_(s), chars_(s ? env->GetStringUTFChars(s, nullptr) : nullptr) {}
  ~Utf8() {
    if (chars_ != nullptr) env_->ReleaseStringUTFChars(s_, chars_);
  }
  Utf8(const Utf8&) = delete;
  Utf8& operator=(const Utf8&) = delete;
  const char* get() const { return chars_; }
  // GetStringUTFChars failed (it has thrown OutOfMemoryError).
  bool failed() const { return s_ != nullptr && chars_ == nullptr; }

 private:
  JNIEnv* env_;
  jstring s_;
  const char* chars_;
};

}  // namespace

extern "C" {

// A new delegate, or an IllegalArgumentException with bitlite's reason (a negative thread
// count, a kernel this build or CPU cannot run).
JNIEXPORT jlong JNICALL Java_org_bitlite_demo_BitliteNative_nativeCreate(JNIEnv* env, jclass,
                                                                         jint num_threads,
                                                                         jstring kernel) {
  Utf8 name(env, kernel);
  if (name.failed()) return 0;
  BitliteDelegateOptions options = BitliteDelegateOptionsDefault();
  options.num_threads = num_threads;
  options.kernel = name.get();  // copied by BitliteDelegateCreate
  TfLiteDelegate* delegate = BitliteDelegateCreate(&options);
  if (delegate == nullptr) {
    Throw(env, "java/lang/IllegalArgumentException", BitliteDelegateLastError());
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(delegate));
}

JNIEXPORT void JNICALL Java_org_bitlite_demo_BitliteNative_nativeDelete(JNIEnv*, jclass,
                                                                        jlong handle) {
  BitliteDelegateDelete(reinterpret_cast<TfLiteDelegate*>(static_cast<intptr_t>(handle)));
}

// The binary-GEMM kernel a delegate with this `kernel` option would run on this CPU
// ("neon", "avx2", ..., or "invalid").
JNIEXPORT jstring JNICALL Java_org_bitlite_demo_BitliteNative_nativeKernelName(JNIEnv* env,
                                                                               jclass,
                                                                               jstring kernel) {
  Utf8 name(env, kernel);
  if (name.failed()) return nullptr;
  return env->NewStringUTF(BitliteKernelName(name.get()));
}

}  // extern "C"

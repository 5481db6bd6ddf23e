package org.bitlite.demo

/**
 * bitlite's delegate library and its JNI shim (`src/main/cpp`): loading them, and the C API
 * of `runtime/src/bitlite_delegate.h` as Kotlin. Plain JVM code, no Android or LiteRT types,
 * so tests/android_demo/test_native.py runs it on a desktop JVM against an x86_64 build.
 *
 * A missing or broken library (an APK built without the NDK, an ABI the APK lacks) is not a
 * crash: [loadError] says why, and [create] throws [IllegalStateException] with that reason.
 */
object BitliteNative {
    /** `libbitlite_delegate.so`, the runtime itself; `libbitlite_jni.so` needs it. */
    const val DELEGATE_LIBRARY = "bitlite_delegate"
    const val JNI_LIBRARY = "bitlite_jni"

    /** null once both libraries are loaded; otherwise why they could not be. */
    val loadError: String? by lazy { load() }

    val isLoaded: Boolean get() = loadError == null

    private fun load(): String? =
        try {
            // The delegate first: the shim's dependency on it is then already satisfied.
            System.loadLibrary(DELEGATE_LIBRARY)
            System.loadLibrary(JNI_LIBRARY)
            null
        } catch (e: UnsatisfiedLinkError) {
            "bitlite's native library did not load (${e.message})"
        } catch (e: SecurityException) {
            "bitlite's native library may not be loaded here (${e.message})"
        }

    /**
     * A new native delegate (a `TfLiteDelegate*`) with [numThreads] threads (0: the
     * interpreter's) and [kernel] (null: the CPU's best). Throws [IllegalArgumentException]
     * for options bitlite refuses, [IllegalStateException] when the library is not loaded.
     */
    fun create(numThreads: Int, kernel: String? = null): Long {
        requireLoaded()
        return linked { nativeCreate(numThreads, kernel) }
    }

    /** Frees a delegate from [create], after every interpreter using it is closed. */
    fun delete(handle: Long) {
        if (handle != 0L) linked { nativeDelete(handle) }
    }

    /** The binary-GEMM kernel [kernel] selects on this CPU ("neon", "avx2", ..., "invalid"). */
    fun kernelName(kernel: String? = null): String {
        requireLoaded()
        return linked { nativeKernelName(kernel) }
    }

    private fun requireLoaded() {
        loadError?.let { throw IllegalStateException(it) }
    }

    /** A library that loaded but lacks a method (a stale build) is an error, not a crash. */
    private inline fun <T> linked(call: () -> T): T =
        try {
            call()
        } catch (e: UnsatisfiedLinkError) {
            throw IllegalStateException("bitlite's JNI library does not match the app (${e.message})", e)
        }

    @JvmStatic
    private external fun nativeCreate(numThreads: Int, kernel: String?): Long

    @JvmStatic
    private external fun nativeDelete(handle: Long)

    @JvmStatic
    private external fun nativeKernelName(kernel: String?): String
}

package org.bitlite.demo

import org.tensorflow.lite.Delegate

/**
 * bitlite's TFLite delegate for LiteRT's Java [org.tensorflow.lite.Interpreter]: pass it to
 * `Interpreter.Options.addDelegate`. LiteRT applies it before its own XNNPACK delegate, so
 * it claims LCE's ops and BitliteDecodeWeights and XNNPACK still takes the rest.
 *
 * Owns the native delegate: [close] it after every interpreter that uses it is closed.
 * Throws like [BitliteNative.create] when the library is missing or the options are bad.
 */
class BitliteDelegate(numThreads: Int = 0, kernel: String? = null) : Delegate {
    private var handle: Long = BitliteNative.create(numThreads, kernel)

    override fun getNativeHandle(): Long {
        check(handle != 0L) { "the bitlite delegate is closed" }
        return handle
    }

    override fun close() {
        BitliteNative.delete(handle)
        handle = 0L
    }
}

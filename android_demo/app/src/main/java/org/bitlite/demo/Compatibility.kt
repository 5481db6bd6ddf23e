package org.bitlite.demo

/** Whether bitlite's native delegate is usable in this process, and which kernel it runs. */
data class NativeStatus(val loadError: String?, val kernel: String?) {
    val isLoaded: Boolean get() = loadError == null

    companion object {
        /** This process's status (loads the libraries on first use). */
        fun current(): NativeStatus {
            BitliteNative.loadError?.let { return NativeStatus(it, null) }
            return try {
                NativeStatus(null, BitliteNative.kernelName())
            } catch (e: IllegalStateException) {
                NativeStatus(e.message ?: e.toString(), null)
            }
        }
    }
}

/** How the app runs a model: with bitlite's delegate or on LiteRT alone; or why it cannot. */
data class RunPlan(val useDelegate: Boolean, val engine: String, val refusal: String?) {
    val runnable: Boolean get() = refusal == null
}

/**
 * The refusal decision: a model whose `model.json` says it has ops only bitlite's delegate
 * runs (`needs_lce`, `needs_bitlite_runtime`) is refused, with the reason and what to do,
 * when the delegate did not load; everything else runs on LiteRT, whose XNNPACK takes the
 * float and int8 ops either way.
 */
object Compatibility {
    const val LITERT = "LiteRT (XNNPACK)"

    fun plan(metadata: ModelMetadata, native: NativeStatus): RunPlan {
        if (!metadata.needsDelegate) return RunPlan(useDelegate = false, engine = LITERT, refusal = null)
        if (native.isLoaded) {
            val kernel = native.kernel ?: "auto"
            return RunPlan(useDelegate = true, engine = "$LITERT + bitlite delegate ($kernel)", refusal = null)
        }
        return RunPlan(useDelegate = false, engine = LITERT, refusal = refusal(metadata, native.loadError ?: ""))
    }

    private fun refusal(metadata: ModelMetadata, loadError: String): String {
        val ops = mutableListOf<String>()
        if (metadata.needsLce) ops.add("Larq Compute Engine's binary ops (LceBconv2d, LceQuantize, ...)")
        if (metadata.needsBitliteRuntime) ops.add("bitlite's packed weights (BitliteDecodeWeights)")
        return "Cannot run ${metadata.model}: it has ${ops.joinToString(" and ")}, which only " +
            "bitlite's delegate runs, and the delegate is unavailable: $loadError. " +
            "Build the app with the NDK (android_demo/README.md), or bundle a model without " +
            "them (python -m pipeline.train --method float or int8-qat, then export)."
    }
}

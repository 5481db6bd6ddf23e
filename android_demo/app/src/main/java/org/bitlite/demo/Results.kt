package org.bitlite.demo

import java.util.Locale

/** One class and its probability. */
data class Prediction(val label: String, val probability: Float)

/**
 * Latency of [runs] timed inferences with [threads] threads, in milliseconds. `native*` is
 * what LiteRT measured inside `Interpreter.run` (the graph alone; null where the runtime
 * does not report it); `call*` is the whole Java call, input and output copies included.
 */
data class Timing(
    val nativeMeanMillis: Double?,
    val nativeMinMillis: Double?,
    val callMeanMillis: Double,
    val callMinMillis: Double,
    val runs: Int,
    val threads: Int
)

/** The top classes of one input and the interpreter's latency on it. */
data class Classification(val top: List<Prediction>, val timing: Timing)

/** Turning the interpreter's outputs and clock readings into what the screen shows. */
object Results {
    /** The [k] most probable classes, most probable first (ties: the lower index first). */
    fun topK(probabilities: FloatArray, labels: List<String>, k: Int): List<Prediction> {
        require(probabilities.size == labels.size) {
            "the model gave ${probabilities.size} outputs for ${labels.size} labels"
        }
        return probabilities.indices
            .sortedWith(compareByDescending<Int> { probabilities[it] }.thenBy { it })
            .take(k)
            .map { Prediction(labels[it], probabilities[it]) }
    }

    /**
     * Mean and minimum of the per-run times (nanoseconds). [nativeNanos] holds LiteRT's
     * own measurement of each run, or is null when any run had none.
     */
    fun timing(callNanos: LongArray, nativeNanos: LongArray?, threads: Int): Timing {
        require(callNanos.isNotEmpty()) { "no timed runs" }
        require(nativeNanos == null || nativeNanos.size == callNanos.size) { "one native time per run" }
        return Timing(
            nativeMeanMillis = nativeNanos?.let { meanMillis(it) },
            nativeMinMillis = nativeNanos?.let { minMillis(it) },
            callMeanMillis = meanMillis(callNanos),
            callMinMillis = minMillis(callNanos),
            runs = callNanos.size,
            threads = threads
        )
    }

    /** E.g. "native 0.412 ms (min 0.398) · call 0.455 ms · 50 runs · 4 threads". */
    fun latencyLine(t: Timing): String {
        val native = if (t.nativeMeanMillis != null && t.nativeMinMillis != null) {
            "native ${millis(t.nativeMeanMillis)} ms (min ${millis(t.nativeMinMillis)}) · "
        } else {
            "native time not reported · "
        }
        val runs = if (t.runs == 1) "1 run" else "${t.runs} runs"
        val threads = if (t.threads == 1) "1 thread" else "${t.threads} threads"
        return native + "call ${millis(t.callMeanMillis)} ms (min ${millis(t.callMinMillis)}) · $runs · $threads"
    }

    /** A probability as a fixed-width percentage, e.g. " 97.3%". */
    fun percent(p: Float): String = String.format(Locale.ROOT, "%5.1f%%", 100 * p)

    private fun millis(ms: Double): String = String.format(Locale.ROOT, "%.3f", ms)

    private fun meanMillis(nanos: LongArray): Double = nanos.sum().toDouble() / nanos.size / 1e6

    private fun minMillis(nanos: LongArray): Double {
        var min = nanos[0]
        for (n in nanos) if (n < min) min = n
        return min / 1e6
    }
}

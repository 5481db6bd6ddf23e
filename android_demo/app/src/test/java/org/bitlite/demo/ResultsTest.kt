package org.bitlite.demo

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.fail
import org.junit.Test

/** What the result card shows: the top classes and the latency line. */
class ResultsTest {
    @Test
    fun topKIsMostProbableFirstWithTiesInLabelOrder() {
        val top = Results.topK(floatArrayOf(0.1f, 0.4f, 0.1f, 0.4f), listOf("a", "b", "c", "d"), 3)
        assertEquals(listOf(Prediction("b", 0.4f), Prediction("d", 0.4f), Prediction("a", 0.1f)), top)
    }

    @Test
    fun topKRefusesOutputsThatDoNotMatchTheLabels() {
        try {
            Results.topK(floatArrayOf(1f), listOf("a", "b"), 1)
            fail("accepted 1 output for 2 labels")
        } catch (e: IllegalArgumentException) {
            assertEquals("the model gave 1 outputs for 2 labels", e.message)
        }
    }

    @Test
    fun timingIsMeanAndMinimumInMilliseconds() {
        val t = Results.timing(longArrayOf(3_000_000, 1_000_000, 2_000_000), longArrayOf(900_000, 600_000, 1_500_000), 4)
        assertEquals(2.0, t.callMeanMillis, 1e-12)
        assertEquals(1.0, t.callMinMillis, 1e-12)
        assertEquals(1.0, t.nativeMeanMillis!!, 1e-12)
        assertEquals(0.6, t.nativeMinMillis!!, 1e-12)
        assertEquals(3, t.runs)
        assertEquals(
            "native 1.000 ms (min 0.600) · call 2.000 ms (min 1.000) · 3 runs · 4 threads",
            Results.latencyLine(t)
        )
    }

    @Test
    fun aRuntimeWithoutNativeTimesSaysSo() {
        val t = Results.timing(longArrayOf(1_234_567), null, 1)
        assertNull(t.nativeMeanMillis)
        assertEquals("native time not reported · call 1.235 ms (min 1.235) · 1 run · 1 thread", Results.latencyLine(t))
    }

    @Test
    fun percentIsFixedWidth() {
        assertEquals(" 97.3%", Results.percent(0.973f))
        assertEquals("100.0%", Results.percent(1f))
    }
}

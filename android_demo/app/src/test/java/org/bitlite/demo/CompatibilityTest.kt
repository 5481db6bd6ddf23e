package org.bitlite.demo

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** The refusal decision: which models run, on what, and what the app says when one cannot. */
class CompatibilityTest {
    private val loaded = NativeStatus(loadError = null, kernel = "neon")
    private val missing = NativeStatus(loadError = "dlopen failed: library \"libbitlite_jni.so\" not found", kernel = null)

    private fun plan(needsLce: Boolean, packed: Boolean, native: NativeStatus): RunPlan =
        Compatibility.plan(ModelMetadata.parse(modelJson(needsLce, packed)), native)

    @Test
    fun aFloatModelRunsOnLiteRtAloneWhateverTheDelegateDoes() {
        for (native in listOf(loaded, missing)) {
            val p = plan(needsLce = false, packed = false, native = native)
            assertTrue(p.runnable)
            assertFalse(p.useDelegate)
            assertEquals("LiteRT (XNNPACK)", p.engine)
        }
    }

    @Test
    fun aBinaryModelRunsWithTheDelegateWhenItLoaded() {
        val p = plan(needsLce = true, packed = false, native = loaded)
        assertTrue(p.runnable)
        assertTrue(p.useDelegate)
        assertNull(p.refusal)
        assertEquals("LiteRT (XNNPACK) + bitlite delegate (neon)", p.engine)
    }

    @Test
    fun aBinaryModelIsRefusedWithTheReasonWhenTheDelegateDidNotLoad() {
        val p = plan(needsLce = true, packed = false, native = missing)
        assertFalse(p.runnable)
        assertFalse(p.useDelegate)
        val reason = p.refusal!!
        assertTrue(reason, reason.startsWith("Cannot run lenet5: it has Larq Compute Engine's binary ops (LceBconv2d"))
        assertTrue(reason, reason.contains("libbitlite_jni.so\" not found"))
        assertTrue(reason, reason.contains("--method float"))
        assertFalse(reason, reason.contains("BitliteDecodeWeights"))
    }

    @Test
    fun packedWeightsAreRefusedByName() {
        val reason = plan(needsLce = true, packed = true, native = missing).refusal!!
        assertTrue(reason, reason.contains("LceBconv2d") && reason.contains("BitliteDecodeWeights"))
        assertTrue(plan(needsLce = false, packed = true, native = loaded).useDelegate)
    }
}

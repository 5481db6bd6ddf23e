package org.bitlite.demo

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** A model.json as `python -m pipeline.export` writes it, with some entries replaced. */
fun modelJson(
    needsLce: Boolean = true,
    needsBitliteRuntime: Boolean? = false,
    replace: Map<String, String> = emptyMap()
): String {
    val entries = linkedMapOf(
        "format" to "\"bitlite-model/1\"",
        "model" to "\"lenet5\"",
        "method" to "\"bnn\"",
        "dataset" to "\"mnist\"",
        "input_shape" to "[28, 28, 1]",
        "input_dtype" to "\"float32\"",
        "normalization" to "{\"scale\": 0.00784313725490196, \"offset\": -1.0}",
        "labels" to "[\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\"]",
        "output" to "\"probabilities\"",
        "needs_lce" to needsLce.toString()
    )
    if (needsBitliteRuntime != null) entries["needs_bitlite_runtime"] = needsBitliteRuntime.toString()
    entries.putAll(replace)
    return entries.entries.joinToString(",\n  ", "{\n  ", "\n}") { "\"${it.key}\": ${it.value}" }
}

class ModelMetadataTest {
    private fun refusal(json: String): String {
        try {
            ModelMetadata.parse(json)
        } catch (e: IllegalArgumentException) {
            return e.message!!
        }
        fail("accepted:\n$json")
        throw AssertionError()
    }

    @Test
    fun readsAnExport() {
        val m = ModelMetadata.parse(modelJson())
        assertEquals("lenet5", m.model)
        assertEquals("bnn", m.method)
        assertEquals("mnist", m.dataset)
        assertEquals(28, m.inputShape.height)
        assertEquals(28, m.inputShape.width)
        assertEquals(1, m.inputShape.channels)
        assertEquals(1.0 / 127.5, m.scale, 0.0)
        assertEquals(-1.0, m.offset, 0.0)
        assertEquals((0..9).map { it.toString() }, m.labels)
        assertTrue(m.needsLce)
        assertFalse(m.needsBitliteRuntime)
        assertTrue(m.needsDelegate)
    }

    @Test
    fun packedWeightsNeedTheDelegateToo() {
        val m = ModelMetadata.parse(modelJson(needsLce = false, needsBitliteRuntime = true))
        assertTrue(m.needsBitliteRuntime)
        assertTrue(m.needsDelegate)
    }

    @Test
    fun anExportFromBeforePackedWeightsNeedsNoBitliteRuntime() {
        val m = ModelMetadata.parse(modelJson(needsLce = false, needsBitliteRuntime = null))
        assertFalse(m.needsDelegate)
    }

    @Test
    fun aKerasExportWithoutRunHasNoMethodOrDataset() {
        val json = modelJson().replace("\"method\": \"bnn\",", "").replace("\"dataset\": \"mnist\",", "")
        val m = ModelMetadata.parse(json)
        assertEquals("", m.method)
        assertEquals("", m.dataset)
    }

    @Test
    fun refusesWhatTheAppCannotFeedOrRead() {
        assertEquals(
            "model.json: format is bitlite-model/2; this app reads bitlite-model/1",
            refusal(modelJson(replace = mapOf("format" to "\"bitlite-model/2\"")))
        )
        assertEquals(
            "model.json: input_dtype uint8 is not supported (float32 only)",
            refusal(modelJson(replace = mapOf("input_dtype" to "\"uint8\"")))
        )
        assertTrue(refusal(modelJson(replace = mapOf("output" to "\"logits\""))).contains("probabilities only"))
        assertEquals(
            "model.json: input_shape must be [H, W, C], got 2 values",
            refusal(modelJson(replace = mapOf("input_shape" to "[28, 28]")))
        )
        assertEquals(
            "model.json: only 1 or 3 input channels are supported",
            refusal(modelJson(replace = mapOf("input_shape" to "[28, 28, 2]")))
        )
        assertEquals(
            "model.json: needs_lce must be true or false",
            refusal(modelJson(replace = mapOf("needs_lce" to "\"yes\"")))
        )
        assertEquals("model.json: labels is empty", refusal(modelJson(replace = mapOf("labels" to "[]"))))
        assertTrue(refusal("{not json").startsWith("model.json: invalid JSON at offset 1"))
    }
}

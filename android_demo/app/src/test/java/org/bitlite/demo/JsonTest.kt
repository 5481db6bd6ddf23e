package org.bitlite.demo

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The plain-Kotlin JSON reader behind ModelMetadata (`./gradlew test`, tests/android_demo). */
class JsonTest {
    private fun obj(text: String) = Json.parseObject(text, "test")

    private fun assertRejected(text: String, fragment: String) {
        try {
            Json.parse(text)
            fail("accepted $text")
        } catch (e: IllegalArgumentException) {
            assertTrue("'${e.message}' lacks '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun readsNestedValues() {
        val root = obj("""{"a": {"b": [1, 2.5e-3, -0.5]}, "s": "x", "t": true, "n": null}""")
        val array = root.getObject("a").getArray("b")
        assertEquals(3, array.size)
        assertEquals(1, array.getInt(0))
        assertEquals("x", root.getString("s"))
        assertTrue(root.getBoolean("t"))
        assertTrue(root.has("n"))
        assertEquals(setOf("a", "s", "t", "n"), root.keys)
    }

    @Test
    fun numbersAreParsedToTheNearestDouble() {
        // Python's repr of the MNIST scale, as model.json stores it.
        val root = obj("""{"scale": 0.00784313725490196, "big": 1E+2}""")
        assertEquals(1.0 / 127.5, root.getDouble("scale"), 0.0)
        assertEquals(100.0, root.getDouble("big"), 0.0)
    }

    @Test
    fun decodesEscapes() {
        val root = obj("""{"s": "a\"b\\c\/d\n\u00e9\u4e2d"}""")
        assertEquals("a\"b\\c/d\n\u00e9\u4e2d", root.getString("s"))
    }

    @Test
    fun rejectsWhatJsonDoesNotAllow() {
        assertRejected("""{"a": 1,}""", "expected a key")
        assertRejected("""[1 2]""", "expected ']'")
        assertRejected("""{"a": tru}""", "unknown literal")
        assertRejected("""{} x""", "after the JSON value")
        assertRejected("""{"a": 01}""", "bad number")
        assertRejected("""{"a": .5}""", "bad number")
        assertRejected("""{"a": "\x"}""", "bad escape")
        assertRejected("""{"a": "\u12"}""", "bad \\u escape")
        assertRejected("""{"a": "open""", "unterminated string")
        assertRejected("", "unexpected end")
    }

    @Test
    fun gettersNameTheKeyAndTheExpectedType() {
        val root = obj("""{"n": {"scale": "0.5", "shape": [28, 2.5]}}""")
        assertMessage("n.scale must be a number") { root.getObject("n").getDouble("scale") }
        assertMessage("n.shape[1] must be an integer") { root.getObject("n").getArray("shape").getInt(1) }
        assertMessage("n.shape[2] is missing") { root.getObject("n").getArray("shape").getInt(2) }
        assertMessage("n.offset is missing") { root.getObject("n").getDouble("offset") }
    }

    @Test
    fun optionalKeysFallBackOnlyWhenAbsent() {
        val root = obj("""{"flag": false, "bad": "yes"}""")
        assertFalse(root.optBoolean("flag", true))
        assertTrue(root.optBoolean("absent", true))
        assertMessage("bad must be true or false") { root.optBoolean("bad", false) }
        assertEquals("", root.optString("absent", ""))
    }

    @Test
    fun topLevelNullIsAValueButNotAnObject() {
        assertNull(Json.parse(" null "))
        assertMessage("test is not a JSON object") { Json.parseObject("[1]", "test") }
    }

    private fun assertMessage(expected: String, block: () -> Unit) {
        try {
            block()
            fail("no error; expected: $expected")
        } catch (e: IllegalArgumentException) {
            assertEquals(expected, e.message)
        }
    }
}

package org.bitlite.demo

/**
 * A strict JSON reader, just enough for `model.json`. Android's `org.json` exists only on a
 * device (its JVM stub throws), so a plain-Kotlin reader lets [ModelMetadata] be unit
 * tested on any JVM, and under Debian's `kotlinc` in tests/android_demo.
 *
 * Values: [JsonObject], [JsonArray], String, Double (every number), Boolean, or null.
 * Malformed text throws [IllegalArgumentException] naming the offset.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (!reader.atEnd()) reader.fail("unexpected text after the JSON value")
        return value
    }

    /** [text] must be a JSON object; [what] names it in error messages. */
    fun parseObject(text: String, what: String): JsonObject =
        parse(text) as? JsonObject ?: throw IllegalArgumentException("$what is not a JSON object")

    private class Reader(val text: String) {
        var pos = 0

        fun atEnd() = pos >= text.length

        fun fail(message: String): Nothing = throw IllegalArgumentException("invalid JSON at offset $pos: $message")

        fun skipSpace() {
            while (!atEnd() && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipSpace()
            if (atEnd()) fail("unexpected end")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        fun literal(word: String, value: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("unknown literal")
            pos += word.length
            return value
        }

        fun obj(): JsonObject {
            pos++ // {
            val map = LinkedHashMap<String, Any?>()
            skipSpace()
            if (!atEnd() && text[pos] == '}') {
                pos++
                return JsonObject(map)
            }
            while (true) {
                skipSpace()
                if (atEnd() || text[pos] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                expect(':')
                map[key] = value()
                skipSpace()
                if (!atEnd() && text[pos] == ',') {
                    pos++
                    continue
                }
                expect('}')
                return JsonObject(map)
            }
        }

        fun array(): JsonArray {
            pos++ // [
            val items = ArrayList<Any?>()
            skipSpace()
            if (!atEnd() && text[pos] == ']') {
                pos++
                return JsonArray(items)
            }
            while (true) {
                items.add(value())
                skipSpace()
                if (!atEnd() && text[pos] == ',') {
                    pos++
                    continue
                }
                expect(']')
                return JsonArray(items)
            }
        }

        fun expect(c: Char) {
            if (atEnd() || text[pos] != c) fail("expected '$c'")
            pos++
        }

        fun string(): String {
            pos++ // opening quote
            val out = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> out.append(escape())
                    c < ' ' -> fail("control character in a string")
                    else -> out.append(c)
                }
            }
        }

        fun escape(): Char {
            if (atEnd()) fail("unterminated escape")
            return when (val c = text[pos++]) {
                '"', '\\', '/' -> c
                'b' -> '\b'
                'f' -> '\u000C'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    val hex = text.substring(pos, minOf(pos + 4, text.length))
                    if (hex.length < 4 || !hex.all { it in HEX_DIGITS }) fail("bad \\u escape")
                    pos += 4
                    hex.toInt(16).toChar()
                }
                else -> fail("bad escape \\$c")
            }
        }

        fun number(): Double {
            val start = pos
            while (!atEnd() && text[pos] in "+-0123456789.eE") pos++
            val literal = text.substring(start, pos)
            // JSON's grammar, which toDouble() alone would loosen (it takes "1.", ".5", "+1").
            if (!NUMBER.matches(literal)) fail("bad number '$literal'")
            return literal.toDouble()
        }
    }

    private const val HEX_DIGITS = "0123456789abcdefABCDEF"
    private val NUMBER = Regex("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")
}

/** A JSON object; the getters throw [IllegalArgumentException] saying which key is wrong. */
class JsonObject(private val map: Map<String, Any?>, private val path: String = "") {
    val keys: Set<String> get() = map.keys

    fun has(key: String): Boolean = map.containsKey(key)

    fun getString(key: String): String = typed(key, "a string") { it as? String }

    /** An optional string: [default] when the key is absent, an error when it is not a string. */
    fun optString(key: String, default: String): String = if (has(key)) getString(key) else default

    fun getBoolean(key: String): Boolean = typed(key, "true or false") { it as? Boolean }

    /** An optional flag: [default] when the key is absent, an error when it is not a boolean. */
    fun optBoolean(key: String, default: Boolean): Boolean = if (has(key)) getBoolean(key) else default

    fun getDouble(key: String): Double = typed(key, "a number") { it as? Double }

    fun getInt(key: String): Int = typed(key, "an integer") { exactInt(it) }

    fun getArray(key: String): JsonArray = typed(key, "an array") { it as? JsonArray }.at(name(key))

    fun getObject(key: String): JsonObject =
        typed(key, "an object") { it as? JsonObject }.let { JsonObject(it.map, name(key)) }

    private fun name(key: String) = if (path.isEmpty()) key else "$path.$key"

    private fun <T> typed(key: String, what: String, cast: (Any?) -> T?): T {
        if (!has(key)) throw IllegalArgumentException("${name(key)} is missing")
        return cast(map[key]) ?: throw IllegalArgumentException("${name(key)} must be $what")
    }
}

/** A JSON array; the getters throw [IllegalArgumentException] saying which item is wrong. */
class JsonArray(private val items: List<Any?>, private val path: String = "") {
    val size: Int get() = items.size

    fun at(path: String) = JsonArray(items, path)

    fun getString(index: Int): String = typed(index, "a string") { it as? String }

    fun getInt(index: Int): Int = typed(index, "an integer") { exactInt(it) }

    private fun <T> typed(index: Int, what: String, cast: (Any?) -> T?): T {
        if (index !in items.indices) throw IllegalArgumentException("$path[$index] is missing")
        return cast(items[index]) ?: throw IllegalArgumentException("$path[$index] must be $what")
    }
}

private fun exactInt(value: Any?): Int? {
    val d = value as? Double ?: return null
    val i = d.toInt()
    return if (i.toDouble() == d) i else null
}

package org.bitlite.demo

/**
 * The sidecar `model.json` that `python -m pipeline.export` writes next to `model.tflite`:
 * everything the app needs to feed the model, so no preprocessing constant lives in the app.
 * `tests/android_demo/test_contract.py` checks every key read here against a real export.
 * Plain Kotlin (no Android types), so JVM unit tests and `kotlinc` run it.
 */
data class ModelMetadata(
    val model: String,
    val method: String,
    val dataset: String,
    val inputShape: Preprocessing.Shape,
    val scale: Double,
    val offset: Double,
    val labels: List<String>,
    /** The model has LCE's custom ops (LceBconv2d, LceQuantize, ...): bitlite's delegate runs them. */
    val needsLce: Boolean,
    /** The model has bitlite's BitliteDecodeWeights (a `--pack-weights` export): the delegate runs it. */
    val needsBitliteRuntime: Boolean
) {
    /** Whether any op of the model is one only bitlite's delegate has a kernel for. */
    val needsDelegate: Boolean get() = needsLce || needsBitliteRuntime

    companion object {
        /** The asset names `python -m pipeline.export --android android_demo` writes. */
        const val MODEL_ASSET = "model.tflite"
        const val METADATA_ASSET = "model.json"
        const val FORMAT = "bitlite-model/1"

        /** Reads model.json; a file this app cannot use throws [IllegalArgumentException] saying why. */
        fun parse(json: String): ModelMetadata {
            val root = try {
                Json.parseObject(json, METADATA_ASSET)
            } catch (e: IllegalArgumentException) {
                throw IllegalArgumentException("$METADATA_ASSET: ${e.message}")
            }
            return try {
                read(root)
            } catch (e: IllegalArgumentException) {
                throw IllegalArgumentException("$METADATA_ASSET: ${e.message}")
            }
        }

        private fun read(root: JsonObject): ModelMetadata {
            val format = root.getString("format")
            require(format == FORMAT) { "format is $format; this app reads $FORMAT" }
            val dtype = root.getString("input_dtype")
            require(dtype == "float32") { "input_dtype $dtype is not supported (float32 only)" }
            val output = root.getString("output")
            require(output == "probabilities") {
                "output is \"$output\"; the app shows class probabilities only (export a trained run)"
            }

            val shape = root.getArray("input_shape")
            require(shape.size == 3) { "input_shape must be [H, W, C], got ${shape.size} values" }
            val normalization = root.getObject("normalization")
            val labels = root.getArray("labels")
            require(labels.size > 0) { "labels is empty" }
            return ModelMetadata(
                model = root.getString("model"),
                // A `--keras` export has no training run, hence no method or dataset.
                method = root.optString("method", ""),
                dataset = root.optString("dataset", ""),
                inputShape = Preprocessing.Shape(shape.getInt(0), shape.getInt(1), shape.getInt(2)),
                scale = normalization.getDouble("scale"),
                offset = normalization.getDouble("offset"),
                labels = List(labels.size) { labels.getString(it) },
                needsLce = root.getBoolean("needs_lce"),
                // Exports from before --pack-weights existed lack the key, and cannot need it.
                needsBitliteRuntime = root.optBoolean("needs_bitlite_runtime", false)
            )
        }
    }
}

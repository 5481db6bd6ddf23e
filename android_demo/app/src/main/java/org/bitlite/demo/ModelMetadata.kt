package org.bitlite.demo

import org.json.JSONObject

/**
 * The sidecar `model.json` that `python -m pipeline.export` writes next to `model.tflite`:
 * everything the app needs to feed the model, so no preprocessing constant lives in the app.
 * `tests/android_demo/test_contract.py` checks every key read here against a real export.
 */
data class ModelMetadata(
    val model: String,
    val method: String,
    val dataset: String,
    val inputShape: Preprocessing.Shape,
    val scale: Double,
    val offset: Double,
    val labels: List<String>,
    val needsLce: Boolean,
) {
    companion object {
        /** The asset names `python -m pipeline.export --android android_demo` writes. */
        const val MODEL_ASSET = "model.tflite"
        const val METADATA_ASSET = "model.json"
        const val FORMAT = "bitlite-model/1"

        fun parse(json: String): ModelMetadata {
            val root = JSONObject(json)
            val format = root.getString("format")
            require(format == FORMAT) { "$METADATA_ASSET is $format; this app reads $FORMAT" }
            val dtype = root.getString("input_dtype")
            require(dtype == "float32") { "input_dtype $dtype is not supported (float32 only)" }
            val output = root.getString("output")
            require(output == "probabilities") { "output $output is not supported" }

            val shape = root.getJSONArray("input_shape")
            require(shape.length() == 3) { "input_shape must be [H, W, C], got $shape" }
            val normalization = root.getJSONObject("normalization")
            val labels = root.getJSONArray("labels")
            return ModelMetadata(
                model = root.getString("model"),
                method = root.getString("method"),
                dataset = root.getString("dataset"),
                inputShape = Preprocessing.Shape(shape.getInt(0), shape.getInt(1), shape.getInt(2)),
                scale = normalization.getDouble("scale"),
                offset = normalization.getDouble("offset"),
                labels = List(labels.length()) { labels.getString(it) },
                needsLce = root.getBoolean("needs_lce"),
            )
        }
    }
}

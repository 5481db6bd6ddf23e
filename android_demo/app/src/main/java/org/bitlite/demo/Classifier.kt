package org.bitlite.demo

import android.content.Context
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** One class and its probability. */
data class Prediction(val label: String, val probability: Float)

/** The top classes of one input and the interpreter's latency on it. */
data class Classification(
    val top: List<Prediction>,
    val meanMillis: Double,
    val minMillis: Double,
    val runs: Int,
    val threads: Int,
)

/**
 * The exported model in a TensorFlow Lite [Interpreter] with [threads] CPU threads.
 *
 * Built against LCE's AAR (see README), the interpreter's op resolver also has LCE's custom
 * ops (`LceBconv2d`, `LceQuantize`, ...), so binarized models run with LCE's optimized
 * kernels; built against the stock TFLite AAR, float and int8 models run. Not thread-safe:
 * the caller confines an instance to one thread.
 */
class Classifier(
    model: ByteBuffer,
    val metadata: ModelMetadata,
    val threads: Int,
) : Closeable {
    private val interpreter: Interpreter
    private val input: ByteBuffer
    private val output: Array<FloatArray>

    init {
        val options = Interpreter.Options().setNumThreads(threads)
        // LCE's Android guide: XNNPACK does not work with LCE's AAR, and LCE's kernels do not
        // need it. With the stock AAR, XNNPACK stays on (it speeds up float models).
        if (BuildConfig.WITH_LCE) options.setUseXNNPACK(false)
        interpreter = Interpreter(model, options)
        val shape = metadata.inputShape
        checkTensor(
            "input",
            interpreter.getInputTensor(0).shape(),
            interpreter.getInputTensor(0).dataType(),
            intArrayOf(1, shape.height, shape.width, shape.channels),
        )
        checkTensor(
            "output",
            interpreter.getOutputTensor(0).shape(),
            interpreter.getOutputTensor(0).dataType(),
            intArrayOf(1, metadata.labels.size),
        )
        input = ByteBuffer.allocateDirect(4 * shape.size).order(ByteOrder.nativeOrder())
        output = arrayOf(FloatArray(metadata.labels.size))
    }

    /**
     * Run the model on a normalized `H x W x C` tensor: [warmup] untimed runs, then [runs]
     * timed ones; returns the [topK] classes and the mean and fastest time per inference.
     */
    fun classify(tensor: FloatArray, runs: Int = RUNS, warmup: Int = WARMUP, topK: Int = 3): Classification {
        require(tensor.size == metadata.inputShape.size) { "tensor has ${tensor.size} values" }
        input.rewind()
        input.asFloatBuffer().put(tensor)
        repeat(warmup) { runOnce() }
        val times = LongArray(runs) {
            val start = System.nanoTime()
            runOnce()
            System.nanoTime() - start
        }
        val probabilities = output[0]
        val top = probabilities.indices
            .sortedByDescending { probabilities[it] }
            .take(topK)
            .map { Prediction(metadata.labels[it], probabilities[it]) }
        return Classification(
            top = top,
            meanMillis = times.average() / 1e6,
            minMillis = times.min() / 1e6,
            runs = runs,
            threads = threads,
        )
    }

    private fun runOnce() {
        input.rewind()
        interpreter.run(input, output)
    }

    override fun close() = interpreter.close()

    companion object {
        /** Timed runs per classification: the latency shown is their mean. */
        const val RUNS = 50
        const val WARMUP = 5

        /** The bundled model, memory-mapped from the APK (assets are stored uncompressed). */
        fun loadModel(context: Context): MappedByteBuffer =
            context.assets.openFd(ModelMetadata.MODEL_ASSET).use { fd ->
                FileInputStream(fd.fileDescriptor).channel.use { channel ->
                    channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }

        fun loadMetadata(context: Context): ModelMetadata =
            context.assets.open(ModelMetadata.METADATA_ASSET).bufferedReader().use {
                ModelMetadata.parse(it.readText())
            }

        private fun checkTensor(name: String, actual: IntArray, type: DataType, expected: IntArray) {
            require(type == DataType.FLOAT32) {
                "the model's $name is $type; ${ModelMetadata.METADATA_ASSET} promises float32"
            }
            require(actual.contentEquals(expected)) {
                "the model's $name is ${actual.contentToString()}; " +
                    "${ModelMetadata.METADATA_ASSET} promises ${expected.contentToString()}"
            }
        }
    }
}

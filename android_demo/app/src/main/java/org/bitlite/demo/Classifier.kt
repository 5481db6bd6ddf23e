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

/**
 * The exported model in LiteRT's [Interpreter] with [threads] CPU threads; with bitlite's
 * delegate when [plan] says the model needs it (LCE ops, packed weights), XNNPACK for the
 * rest. Not thread-safe: the caller confines an instance to one thread.
 *
 * Construction either succeeds or leaves nothing open: a model the interpreter rejects
 * (bitlite reports an unsupported op option when the graph is prepared) closes the
 * delegate it made and throws.
 */
class Classifier(
    model: ByteBuffer,
    val metadata: ModelMetadata,
    val threads: Int,
    plan: RunPlan,
) : Closeable {
    private val delegate: BitliteDelegate?
    private val interpreter: Interpreter
    private val input: ByteBuffer
    private val output: Array<FloatArray>

    init {
        require(plan.runnable) { plan.refusal ?: "the model cannot run" }
        // bitlite's kernels follow the interpreter's thread count (0).
        delegate = if (plan.useDelegate) BitliteDelegate(numThreads = 0) else null
        interpreter = try {
            val options = Interpreter.Options().setNumThreads(threads)
            delegate?.let { options.addDelegate(it) }
            Interpreter(model, options)
        } catch (e: Throwable) {
            delegate?.close()
            throw e
        }
        try {
            checkTensors()
        } catch (e: Throwable) {
            close()
            throw e
        }
        input = ByteBuffer.allocateDirect(4 * metadata.inputShape.size).order(ByteOrder.nativeOrder())
        output = arrayOf(FloatArray(metadata.labels.size))
    }

    private fun checkTensors() {
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
    }

    /**
     * Run the model on a normalized `H x W x C` tensor: [warmup] untimed runs, then [runs]
     * timed ones; returns the [topK] classes and LiteRT's native time per inference beside
     * the time of the whole Java call.
     */
    fun classify(tensor: FloatArray, runs: Int = RUNS, warmup: Int = WARMUP, topK: Int = 3): Classification {
        require(tensor.size == metadata.inputShape.size) { "tensor has ${tensor.size} values" }
        input.rewind()
        input.asFloatBuffer().put(tensor)
        repeat(warmup) { runOnce() }
        val call = LongArray(runs)
        val native = LongArray(runs)
        var nativeReported = true
        for (i in 0 until runs) {
            val start = System.nanoTime()
            runOnce()
            call[i] = System.nanoTime() - start
            val measured = interpreter.lastNativeInferenceDurationNanoseconds
            if (measured == null) nativeReported = false else native[i] = measured
        }
        return Classification(
            top = Results.topK(output[0], metadata.labels, topK),
            timing = Results.timing(call, if (nativeReported) native else null, threads),
        )
    }

    private fun runOnce() {
        input.rewind()
        interpreter.run(input, output)
    }

    /** The interpreter first: the delegate must outlive it. */
    override fun close() {
        interpreter.close()
        delegate?.close()
    }

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

package org.bitlite.demo

import android.app.Application
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.nio.ByteBuffer
import java.util.concurrent.Executors

/** What the screen shows. */
@Suppress("ArrayInDataClass") // compared by identity on purpose: each run makes a new array
data class DemoState(
    val metadata: ModelMetadata? = null,
    /** How the model runs (engine, delegate), or why it cannot; null while loading. */
    val plan: RunPlan? = null,
    val threads: Int = 1,
    /** What the model saw last: its uint8 pixels, `H x W x C`. */
    val modelPixels: IntArray? = null,
    val classification: Classification? = null,
    val picked: Bitmap? = null,
    val busy: Boolean = false,
    val error: String? = null,
)

/**
 * Loads the bundled model once, decides whether this build can run it ([Compatibility]),
 * and classifies drawings and picked images off the main thread. The interpreter lives on
 * one single-threaded dispatcher (it is not thread-safe); changing the thread count
 * rebuilds it, since LiteRT fixes threads at construction. A failed build leaves no
 * interpreter behind, so the next input tries again instead of reusing a closed one.
 */
class DemoViewModel(application: Application) : AndroidViewModel(application) {
    private val executor = Executors.newSingleThreadExecutor()
    private val inference = executor.asCoroutineDispatcher()
    private val _state = MutableStateFlow(DemoState())
    val state: StateFlow<DemoState> = _state.asStateFlow()

    private var model: ByteBuffer? = null
    private var classifier: Classifier? = null
    private var lastInput: Pair<IntArray, Size>? = null
    private var job: Job? = null

    /** Thread counts offered by the selector, capped by the device's cores. */
    val threadChoices: List<Int> =
        listOf(1, 2, 4, 8).filter { it <= Runtime.getRuntime().availableProcessors() }.ifEmpty { listOf(1) }

    init {
        viewModelScope.launch {
            try {
                val (buffer, metadata, plan) = withContext(inference) {
                    val app = getApplication<Application>()
                    val metadata = Classifier.loadMetadata(app)
                    // Loads bitlite's libraries only when the model needs them.
                    val native = if (metadata.needsDelegate) NativeStatus.current() else NativeStatus(null, null)
                    Triple(Classifier.loadModel(app), metadata, Compatibility.plan(metadata, native))
                }
                model = buffer
                _state.update { it.copy(metadata = metadata, plan = plan, error = plan.refusal) }
                rerun() // in case the user drew while the model loaded
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                _state.update { it.copy(error = "Could not load the bundled model: ${e.message}") }
            }
        }
    }

    /** Classify an ARGB image: the rendered canvas or a picked picture. */
    fun classify(argb: IntArray, width: Int, height: Int) {
        lastInput = argb to Size(width, height)
        rerun()
    }

    fun pick(uri: Uri) {
        viewModelScope.launch {
            try {
                val (bitmap, pixels) = withContext(Dispatchers.IO) {
                    val bitmap = decode(uri)
                    val pixels = IntArray(bitmap.width * bitmap.height)
                    bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
                    bitmap to pixels
                }
                _state.update { it.copy(picked = bitmap) }
                classify(pixels, bitmap.width, bitmap.height)
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                _state.update { it.copy(error = "Could not read that image: ${e.message}") }
            }
        }
    }

    fun setThreads(threads: Int) {
        if (threads == _state.value.threads) return
        _state.update { it.copy(threads = threads) }
        rerun()
    }

    fun clear() {
        job?.cancel()
        lastInput = null
        _state.update {
            // A refused model stays refused: its reason stays on screen.
            it.copy(modelPixels = null, classification = null, picked = null, busy = false, error = it.plan?.refusal)
        }
    }

    private fun rerun() {
        val (argb, size) = lastInput ?: return
        val metadata = _state.value.metadata ?: return
        val plan = _state.value.plan?.takeIf { it.runnable } ?: return // refused: the error says why
        val buffer = model ?: return
        val threads = _state.value.threads
        job?.cancel()
        job = viewModelScope.launch {
            _state.update { it.copy(busy = true, error = null) }
            try {
                val (pixels, result) = withContext(inference) {
                    val pixels = Preprocessing.toPixels(argb, size.width, size.height, metadata.inputShape)
                    val tensor = Preprocessing.normalize(pixels, metadata.scale, metadata.offset)
                    pixels to classifierFor(buffer, metadata, threads, plan).classify(tensor)
                }
                _state.update { it.copy(modelPixels = pixels, classification = result, busy = false) }
            } catch (e: CancellationException) {
                throw e // a newer input superseded this one
            } catch (e: RuntimeException) {
                // LiteRT reports a model it cannot prepare (bitlite: an unsupported op option)
                // as IllegalArgumentException; bitlite's missing library as IllegalStateException.
                _state.update { it.copy(error = e.message ?: e.toString(), busy = false) }
            } catch (e: LinkageError) {
                // UnsatisfiedLinkError from LiteRT's own JNI library (an ABI the APK lacks).
                _state.update { it.copy(error = "LiteRT's native library failed: ${e.message}", busy = false) }
            }
        }
    }

    /** Runs on [inference] only. */
    private fun classifierFor(buffer: ByteBuffer, metadata: ModelMetadata, threads: Int, plan: RunPlan): Classifier {
        val current = classifier
        if (current != null && current.threads == threads) return current
        // Forget the old one before building: if the build throws, nothing closed is kept.
        classifier = null
        current?.close()
        return Classifier(buffer, metadata, threads, plan).also { classifier = it }
    }

    private fun decode(uri: Uri): Bitmap {
        val source = ImageDecoder.createSource(getApplication<Application>().contentResolver, uri)
        // Software ARGB_8888, so getPixels works and the pixels are exactly 8 bits per channel.
        return ImageDecoder.decodeBitmap(source) { decoder, info, _ ->
            decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            // A 12-megapixel photo is far more than a 28x28 input needs: decode it smaller.
            val shortSide = minOf(info.size.width, info.size.height)
            decoder.setTargetSampleSize(maxOf(1, shortSide / MAX_DECODED_SIDE))
        }.copy(Bitmap.Config.ARGB_8888, false)
    }

    override fun onCleared() {
        // After any inference still queued on the executor, never concurrently with it.
        executor.execute {
            classifier?.close()
            classifier = null
        }
        executor.shutdown()
    }

    private data class Size(val width: Int, val height: Int)

    private companion object {
        const val MAX_DECODED_SIDE = 1024
    }
}

// Runs the app's BitliteNative (the JNI shim over bitlite_delegate.h) and its refusal
// decision on a desktop JVM, for test_native.py. Prints one `key=value` line per result.
// Arguments: model.json files to plan for (the plan uses this process's native status,
// so -Djava.library.path decides whether the delegate loads).
package nativecheck

import org.bitlite.demo.BitliteNative
import org.bitlite.demo.Compatibility
import org.bitlite.demo.ModelMetadata
import org.bitlite.demo.NativeStatus
import java.io.File

fun main(args: Array<String>) {
    println("loaded=${BitliteNative.isLoaded}")
    println("load_error=${BitliteNative.loadError ?: ""}")
    for ((i, path) in args.withIndex()) {
        val plan = Compatibility.plan(ModelMetadata.parse(File(path).readText()), NativeStatus.current())
        println("plan$i.runnable=${plan.runnable}")
        println("plan$i.use_delegate=${plan.useDelegate}")
        println("plan$i.engine=${plan.engine}")
        println("plan$i.refusal=${plan.refusal ?: ""}")
    }
    println("create=" + outcome { BitliteNative.create(2, null).also { BitliteNative.delete(it) } })
    if (!BitliteNative.isLoaded) return
    for (kernel in listOf("auto", "reference", "generic", "neon", "avx512", "nonsense")) {
        println("kernel_name.$kernel=${BitliteNative.kernelName(kernel)}")
        println("create.$kernel=" + outcome { BitliteNative.create(0, kernel).also { BitliteNative.delete(it) } })
    }
    println("kernel_name.default=${BitliteNative.kernelName(null)}")
    println("create.threads-1=" + outcome { BitliteNative.create(-1, null) })
    // Many delegates, all alive at once, then all freed: distinct handles, no crash.
    val handles = LongArray(200) { BitliteNative.create(it % 8, null) }
    println("distinct_handles=${handles.toSet().size}")
    handles.forEach { BitliteNative.delete(it) }
    BitliteNative.delete(0L) // a no-op, as for a delegate that was never created
    println("done=true")
}

/** "ok <handle != 0>" or "<exception class>: <message>". */
private fun outcome(block: () -> Long): String =
    try {
        "ok ${block() != 0L}"
    } catch (e: RuntimeException) {
        "${e.javaClass.simpleName}: ${e.message}"
    }

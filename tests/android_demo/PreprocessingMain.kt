// Runs the app's Preprocessing.kt on images from a file, for test_contract.py (under kotlinc).
// In: little-endian int32 n, w, h, H, W, C, then n images of w*h ARGB pixels.
// Out: little-endian float32, n tensors of H*W*C values (scale/offset from the arguments).
import org.bitlite.demo.Preprocessing
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

fun main(args: Array<String>) {
    val input = ByteBuffer.wrap(File(args[0]).readBytes()).order(ByteOrder.LITTLE_ENDIAN)
    val n = input.int
    val w = input.int
    val h = input.int
    val shape = Preprocessing.Shape(input.int, input.int, input.int)
    val out = ByteBuffer.allocate(4 * n * shape.size).order(ByteOrder.LITTLE_ENDIAN)
    repeat(n) {
        val argb = IntArray(w * h) { input.int }
        val pixels = Preprocessing.toPixels(argb, w, h, shape)
        for (v in Preprocessing.normalize(pixels, args[2].toDouble(), args[3].toDouble())) out.putFloat(v)
    }
    File(args[1]).writeBytes(out.array())
}

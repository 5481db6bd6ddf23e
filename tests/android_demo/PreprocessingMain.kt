// Runs the app's Preprocessing.kt on images from files, for test_contract.py (under kotlinc).
// Arguments: scale offset, then pairs of input and output files.
// Input: little-endian int32 n, w, h, H, W, C, then n images of w*h ARGB pixels.
// Output: little-endian float32, n normalized tensors of H*W*C values.
import org.bitlite.demo.Preprocessing
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

fun main(args: Array<String>) {
    val scale = args[0].toDouble()
    val offset = args[1].toDouble()
    for (k in 2 until args.size step 2) {
        val input = ByteBuffer.wrap(File(args[k]).readBytes()).order(ByteOrder.LITTLE_ENDIAN)
        val n = input.int
        val w = input.int
        val h = input.int
        val shape = Preprocessing.Shape(input.int, input.int, input.int)
        val out = ByteBuffer.allocate(4 * n * shape.size).order(ByteOrder.LITTLE_ENDIAN)
        repeat(n) {
            val argb = IntArray(w * h) { input.int }
            val pixels = Preprocessing.toPixels(argb, w, h, shape)
            for (v in Preprocessing.normalize(pixels, scale, offset)) out.putFloat(v)
        }
        File(args[k + 1]).writeBytes(out.array())
    }
}

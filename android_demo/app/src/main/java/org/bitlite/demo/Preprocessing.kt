package org.bitlite.demo

/**
 * The app's preprocessing, step for step as specified in `PREPROCESSING.md` (the numbers in
 * the comments are its steps). Plain Kotlin without Android types, so the same code runs in
 * the app, in JVM unit tests and under `kotlinc` in the Python contract test.
 *
 * Everything before [normalize] is integer arithmetic, so a NumPy implementation of the
 * same steps agrees bit for bit.
 */
object Preprocessing {

    /** The model's input geometry: `input_shape = [height, width, channels]` of model.json. */
    class Shape(val height: Int, val width: Int, val channels: Int) {
        init {
            require(height > 0 && width > 0) { "input size must be positive" }
            require(channels == 1 || channels == 3) { "only 1 or 3 input channels are supported" }
        }

        val size: Int get() = height * width * channels
    }

    /**
     * ARGB pixels (`Bitmap.getPixels` order: row-major, `0xAARRGGBB`) of a `width x height`
     * image -> the model's uint8 pixels, `H x W x C` row-major, each in 0..255.
     */
    fun toPixels(argb: IntArray, width: Int, height: Int, shape: Shape): IntArray {
        require(argb.size == width * height) { "expected ${width * height} pixels, got ${argb.size}" }
        val planes = channelPlanes(argb, shape.channels) // 1, 2
        val crop = centreCrop(width, height, shape) // 3
        val resized = planes.map { plane ->
            areaResize(plane, width, crop, shape.width, shape.height) // 4
        }
        val out = IntArray(shape.size)
        for (p in 0 until shape.height * shape.width) {
            for (c in 0 until shape.channels) out[p * shape.channels + c] = resized[c][p]
        }
        if (shape.channels == 1 && isDarkOnLight(out, shape.width, shape.height)) { // 5
            for (i in out.indices) out[i] = 255 - out[i]
        }
        return out
    }

    /** 6. uint8 pixels -> the float32 tensor the model was trained on: `p * scale + offset`. */
    fun normalize(pixels: IntArray, scale: Double, offset: Double): FloatArray {
        val s = scale.toFloat()
        val o = offset.toFloat()
        return FloatArray(pixels.size) { i -> pixels[i].toFloat() * s + o }
    }

    /** A crop rectangle of the source image, in pixels. */
    class Crop(val x0: Int, val y0: Int, val width: Int, val height: Int)

    /** 3. The largest centred crop with the model's aspect ratio `W : H`. */
    fun centreCrop(width: Int, height: Int, shape: Shape): Crop {
        return if (width.toLong() * shape.height > height.toLong() * shape.width) {
            val cw = (height.toLong() * shape.width / shape.height).toInt()
            Crop((width - cw) / 2, 0, cw, height)
        } else {
            val ch = (width.toLong() * shape.height / shape.width).toInt()
            Crop(0, (height - ch) / 2, width, ch)
        }
    }

    /** 1 and 2: alpha over white paper, then one plane (BT.601 luma) or three (R, G, B). */
    private fun channelPlanes(argb: IntArray, channels: Int): List<IntArray> {
        val r = IntArray(argb.size)
        val g = IntArray(argb.size)
        val b = IntArray(argb.size)
        for (i in argb.indices) {
            val px = argb[i]
            val a = (px ushr 24) and 0xFF
            r[i] = overWhite((px shr 16) and 0xFF, a)
            g[i] = overWhite((px shr 8) and 0xFF, a)
            b[i] = overWhite(px and 0xFF, a)
        }
        if (channels == 3) return listOf(r, g, b)
        return listOf(IntArray(argb.size) { i -> (299 * r[i] + 587 * g[i] + 114 * b[i] + 500) / 1000 })
    }

    private fun overWhite(c: Int, a: Int): Int = (c * a + 255 * (255 - a) + 127) / 255

    /**
     * 4. Box-filter resize of the [crop] of a plane (row stride [stride]) to `outW x outH`:
     * every output pixel is the exact area-weighted mean of the source pixels under it.
     */
    fun areaResize(plane: IntArray, stride: Int, crop: Crop, outW: Int, outH: Int): IntArray {
        val wx = overlaps(crop.width, outW)
        val wy = overlaps(crop.height, outH)
        // Horizontal pass: per source row, the overlap-weighted sums of each output column.
        val rows = Array(crop.height) { j ->
            val base = (crop.y0 + j) * stride + crop.x0
            LongArray(outW) { x ->
                var sum = 0L
                for ((i, w) in wx[x]) sum += w * plane[base + i]
                sum
            }
        }
        val denominator = crop.width.toLong() * crop.height
        val out = IntArray(outW * outH)
        for (y in 0 until outH) {
            for (x in 0 until outW) {
                var sum = 0L
                for ((j, w) in wy[y]) sum += w * rows[j][x]
                out[y * outW + x] = ((sum + denominator / 2) / denominator).toInt()
            }
        }
        return out
    }

    /**
     * For each of [dst] output cells, the source cells under it and their overlap length, in
     * units where a source cell is [dst] long and an output cell is [src] long.
     */
    private fun overlaps(src: Int, dst: Int): Array<List<Pair<Int, Long>>> =
        Array(dst) { x ->
            val lo = x.toLong() * src
            val hi = lo + src
            val first = (lo / dst).toInt()
            val last = ((hi - 1) / dst).toInt()
            (first..last).map { i ->
                val overlap = minOf(hi, (i + 1).toLong() * dst) - maxOf(lo, i.toLong() * dst)
                Pair(i, overlap)
            }
        }

    /** 5. Whether the outermost ring of pixels is light on average (ink on paper). */
    private fun isDarkOnLight(gray: IntArray, width: Int, height: Int): Boolean {
        var sum = 0L
        var count = 0L
        for (y in 0 until height) {
            for (x in 0 until width) {
                if (y == 0 || y == height - 1 || x == 0 || x == width - 1) {
                    sum += gray[y * width + x]
                    count++
                }
            }
        }
        return 2 * sum > 255 * count
    }
}

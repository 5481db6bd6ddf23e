package org.bitlite.demo

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

/**
 * JVM checks of PREPROCESSING.md's steps (`./gradlew test`). The comparison with the
 * pipeline's own preprocessing on real MNIST images is tests/android_demo/test_contract.py.
 */
class PreprocessingTest {
    private val mnist = Preprocessing.Shape(28, 28, 1)

    private fun gray(v: Int) = (0xFF shl 24) or (v shl 16) or (v shl 8) or v

    @Test
    fun nearestUpscaledImageComesBackExactly() {
        val original = IntArray(28 * 28) { (it * 37) % 128 } // dark border: no inversion
        val side = 28 * 10
        val canvas = IntArray(side * side) { p -> gray(original[(p / side / 10) * 28 + (p % side) / 10]) }
        assertArrayEquals(original, Preprocessing.toPixels(canvas, side, side, mnist))
    }

    @Test
    fun areaResizeAveragesUnevenCells() {
        // 3 source pixels onto 2: the middle one is split half and half.
        val plane = intArrayOf(0, 90, 180)
        val out = Preprocessing.areaResize(plane, 3, Preprocessing.Crop(0, 0, 3, 1), 2, 1)
        assertArrayEquals(intArrayOf(30, 150), out) // (2*0 + 1*90)/3, (1*90 + 2*180)/3
    }

    @Test
    fun inkOnPaperIsInverted() {
        val paper = IntArray(28 * 28) { gray(255) }
        paper[14 * 28 + 14] = gray(0)
        val pixels = Preprocessing.toPixels(paper, 28, 28, mnist)
        assertEquals(255, pixels[14 * 28 + 14])
        assertEquals(0, pixels[0])
    }

    @Test
    fun wideImageIsCroppedToTheCentre() {
        val crop = Preprocessing.centreCrop(300, 280, mnist)
        assertEquals(10, crop.x0)
        assertEquals(280, crop.width)
        assertEquals(280, crop.height)
    }

    @Test
    fun normalizeUsesTheMetadataScaleAndOffset() {
        val x = Preprocessing.normalize(intArrayOf(0, 255), 1.0 / 127.5, -1.0)
        assertEquals(-1f, x[0], 0f)
        assertEquals(1f, x[1], 1e-6f)
    }
}

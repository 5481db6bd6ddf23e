package org.bitlite.demo.ui

import android.graphics.Bitmap
import android.graphics.Paint
import androidx.compose.foundation.Canvas
import androidx.compose.foundation.gestures.detectDragGestures
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberUpdatedState
import androidx.compose.runtime.setValue
import androidx.compose.runtime.snapshots.SnapshotStateList
import androidx.compose.ui.Modifier
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.geometry.Size
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.Path
import androidx.compose.ui.graphics.PathEffect
import androidx.compose.ui.graphics.StrokeCap
import androidx.compose.ui.graphics.StrokeJoin
import androidx.compose.ui.graphics.drawscope.DrawScope
import androidx.compose.ui.graphics.drawscope.Stroke
import androidx.compose.ui.input.pointer.pointerInput
import androidx.compose.ui.layout.onSizeChanged
import androidx.compose.ui.unit.IntSize

/**
 * Stroke width as a fraction of the canvas side: MNIST strokes are 2-3 pixels of 28, and
 * the canvas is downscaled to the model's input by an area filter (PREPROCESSING.md).
 */
private const val STROKE_FRACTION = 1f / 12f

/** MNIST digits are centred in a 20x20 box of the 28x28 image: the guide shows that box. */
private const val GUIDE_INSET = 4f / 28f

/**
 * A square chalkboard: white strokes on black, the way MNIST stores its digits. When a
 * stroke ends, [onDrawn] gets the canvas rendered as ARGB pixels at its full resolution,
 * ready for [org.bitlite.demo.Preprocessing.toPixels].
 */
@Composable
fun DrawingCanvas(
    strokes: SnapshotStateList<List<Offset>>,
    showGuide: Boolean,
    onDrawn: (argb: IntArray, side: Int) -> Unit,
    modifier: Modifier = Modifier,
) {
    var canvasSize by remember { mutableStateOf(IntSize.Zero) }
    var current by remember { mutableStateOf<List<Offset>>(emptyList()) }
    // The gesture detector below is set up once; this always calls the latest callback.
    val latestOnDrawn by rememberUpdatedState(onDrawn)

    Canvas(
        modifier
            .fillMaxSize()
            .onSizeChanged { canvasSize = it }
            .pointerInput(Unit) {
                detectDragGestures(
                    onDragStart = { start -> current = listOf(start) },
                    onDragEnd = {
                        strokes.add(current)
                        current = emptyList()
                        val side = minOf(canvasSize.width, canvasSize.height)
                        if (side > 0) latestOnDrawn(render(strokes, side), side)
                    },
                    onDragCancel = { current = emptyList() },
                    onDrag = { change, _ ->
                        change.consume()
                        current = current + change.position
                    },
                )
            },
    ) {
        drawRect(Color.Black)
        if (showGuide) drawGuide()
        val width = this.size.minDimension * STROKE_FRACTION
        for (stroke in strokes + listOf(current)) drawStroke(stroke, width)
    }
}

private fun DrawScope.drawGuide() {
    val inset = size.minDimension * GUIDE_INSET
    drawRect(
        color = Color.White.copy(alpha = 0.25f),
        topLeft = Offset(inset, inset),
        size = Size(size.width - 2 * inset, size.height - 2 * inset),
        style = Stroke(width = 2f, pathEffect = PathEffect.dashPathEffect(floatArrayOf(12f, 12f))),
    )
}

private fun DrawScope.drawStroke(stroke: List<Offset>, width: Float) {
    if (stroke.isEmpty()) return
    if (stroke.size == 1) {
        drawCircle(Color.White, radius = width / 2, center = stroke[0])
        return
    }
    val path = Path().apply {
        moveTo(stroke[0].x, stroke[0].y)
        for (p in stroke.drop(1)) lineTo(p.x, p.y)
    }
    drawPath(path, Color.White, style = Stroke(width, cap = StrokeCap.Round, join = StrokeJoin.Round))
}

/** The strokes on a `side x side` black bitmap, exactly as on screen, as ARGB pixels. */
private fun render(strokes: List<List<Offset>>, side: Int): IntArray {
    val bitmap = Bitmap.createBitmap(side, side, Bitmap.Config.ARGB_8888)
    val canvas = android.graphics.Canvas(bitmap)
    canvas.drawColor(android.graphics.Color.BLACK)
    val paint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = android.graphics.Color.WHITE
        style = Paint.Style.STROKE
        strokeWidth = side * STROKE_FRACTION
        strokeCap = Paint.Cap.ROUND
        strokeJoin = Paint.Join.ROUND
    }
    for (stroke in strokes) {
        if (stroke.isEmpty()) continue
        if (stroke.size == 1) {
            canvas.drawPoint(stroke[0].x, stroke[0].y, paint)
            continue
        }
        val path = android.graphics.Path().apply {
            moveTo(stroke[0].x, stroke[0].y)
            for (p in stroke.drop(1)) lineTo(p.x, p.y)
        }
        canvas.drawPath(path, paint)
    }
    val pixels = IntArray(side * side)
    bitmap.getPixels(pixels, 0, side, 0, 0, side, side)
    bitmap.recycle()
    return pixels
}

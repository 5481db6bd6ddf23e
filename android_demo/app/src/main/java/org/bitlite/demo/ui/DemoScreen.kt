package org.bitlite.demo.ui

import android.graphics.Bitmap
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.aspectRatio
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.layout.width
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.CardDefaults
import androidx.compose.material3.CircularProgressIndicator
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.FilterChip
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateListOf
import androidx.compose.runtime.remember
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.draw.clip
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.res.stringResource
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import org.bitlite.demo.Classification
import org.bitlite.demo.DemoViewModel
import org.bitlite.demo.ModelMetadata
import org.bitlite.demo.R
import org.bitlite.demo.Results
import org.bitlite.demo.RunPlan

@Composable
fun DemoScreen(viewModel: DemoViewModel) {
    val state by viewModel.state.collectAsStateWithLifecycle()
    val strokes = remember { mutableStateListOf<List<Offset>>() }
    val picker = rememberLauncherForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) {
            strokes.clear()
            viewModel.pick(uri)
        }
    }

    Scaffold { padding ->
        Column(
            Modifier
                .padding(padding)
                .padding(16.dp)
                .verticalScroll(rememberScrollState()),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            Text(stringResource(R.string.app_name), style = MaterialTheme.typography.headlineSmall)
            val metadata = state.metadata
            if (metadata != null) ModelLine(metadata, state.plan)

            Box(
                Modifier
                    .fillMaxWidth()
                    .aspectRatio(1f)
                    .clip(MaterialTheme.shapes.medium),
            ) {
                val picked = state.picked
                if (picked != null) {
                    // Crop shows the same centre square that preprocessing keeps.
                    Image(
                        picked.asImageBitmap(),
                        contentDescription = stringResource(R.string.picked_image),
                        contentScale = ContentScale.Crop,
                        modifier = Modifier.fillMaxSize(),
                    )
                } else {
                    DrawingCanvas(
                        strokes = strokes,
                        showGuide = metadata?.inputShape?.channels == 1,
                        onDrawn = { argb, side -> viewModel.classify(argb, side, side) },
                    )
                }
            }

            Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                OutlinedButton(onClick = {
                    strokes.clear()
                    viewModel.clear()
                }) { Text(stringResource(R.string.clear)) }
                Button(onClick = {
                    picker.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
                }) { Text(stringResource(R.string.pick_image)) }
            }

            ThreadSelector(viewModel.threadChoices, state.threads, viewModel::setThreads)

            state.error?.let { ErrorCard(it) }
            state.classification?.let { ResultCard(it, state.modelPixels, metadata, state.busy) }
            if (state.classification == null && state.busy) CircularProgressIndicator()
            if (state.classification == null && !state.busy && state.error == null) {
                Text(
                    stringResource(if (metadata?.inputShape?.channels == 1) R.string.hint_draw else R.string.hint_pick),
                    style = MaterialTheme.typography.bodyMedium,
                )
            }
        }
    }
}

@Composable
private fun ModelLine(metadata: ModelMetadata, plan: RunPlan?) {
    val shape = metadata.inputShape
    val parts = listOf(metadata.model, metadata.method, metadata.dataset).filter { it.isNotEmpty() }
    Text(
        (parts + "${shape.height}×${shape.width}×${shape.channels}" + listOfNotNull(plan?.engine))
            .joinToString(" · "),
        style = MaterialTheme.typography.bodyMedium,
    )
}

@OptIn(ExperimentalMaterial3Api::class) // FilterChip, experimental in older Material 3
@Composable
private fun ThreadSelector(choices: List<Int>, selected: Int, onSelect: (Int) -> Unit) {
    Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Text(stringResource(R.string.threads), style = MaterialTheme.typography.titleSmall)
        for (n in choices) {
            FilterChip(selected = n == selected, onClick = { onSelect(n) }, label = { Text("$n") })
        }
    }
}

@Composable
private fun ResultCard(result: Classification, pixels: IntArray?, metadata: ModelMetadata?, busy: Boolean) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            for (prediction in result.top) {
                Row(verticalAlignment = Alignment.CenterVertically) {
                    Text(prediction.label, Modifier.width(120.dp), style = MaterialTheme.typography.titleMedium)
                    LinearProgressIndicator(
                        progress = { prediction.probability },
                        modifier = Modifier.weight(1f),
                    )
                    Spacer(Modifier.width(8.dp))
                    Text(Results.percent(prediction.probability), fontFamily = FontFamily.Monospace)
                }
            }
            Text(
                Results.latencyLine(result.timing),
                style = MaterialTheme.typography.bodyMedium,
                fontFamily = FontFamily.Monospace,
            )
            if (pixels != null && metadata != null) {
                Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(12.dp)) {
                    ModelInput(pixels, metadata)
                    Text(stringResource(R.string.model_input), style = MaterialTheme.typography.bodySmall)
                    if (busy) CircularProgressIndicator(Modifier.size(20.dp), strokeWidth = 2.dp)
                }
            }
        }
    }
}

/** The uint8 pixels the model saw, enlarged without smoothing. */
@Composable
private fun ModelInput(pixels: IntArray, metadata: ModelMetadata) {
    val shape = metadata.inputShape
    val bitmap = remember(pixels) {
        val colors = IntArray(shape.height * shape.width) { p ->
            if (shape.channels == 1) {
                val v = pixels[p]
                (0xFF shl 24) or (v shl 16) or (v shl 8) or v
            } else {
                (0xFF shl 24) or (pixels[3 * p] shl 16) or (pixels[3 * p + 1] shl 8) or pixels[3 * p + 2]
            }
        }
        Bitmap.createBitmap(colors, shape.width, shape.height, Bitmap.Config.ARGB_8888).asImageBitmap()
    }
    Image(
        bitmap,
        contentDescription = stringResource(R.string.model_input),
        filterQuality = FilterQuality.None,
        modifier = Modifier.size(84.dp),
    )
}

@Composable
private fun ErrorCard(message: String) {
    Card(
        Modifier.fillMaxWidth(),
        colors = CardDefaults.cardColors(containerColor = MaterialTheme.colorScheme.errorContainer),
    ) {
        Text(message, Modifier.padding(16.dp), color = MaterialTheme.colorScheme.onErrorContainer)
    }
}

""".tflite flatbuffers without TensorFlow: read them, count what they cost, rewrite them.

In: flatbuffer bytes. Out: :class:`~pipeline.tflite.reader.TFLiteModel` (tensors, ops, MACs,
storage) or rewritten bytes. Needs only ``numpy`` and ``flatbuffers`` plus a generated
schema reader, so ``tools.inspect`` and the bench run where TensorFlow is not installed.

- :mod:`~pipeline.tflite.reader` — parse a file, count MACs and bits per weight
- :mod:`~pipeline.tflite.rewrite` — int8 / k-bit packed weights, metadata
"""

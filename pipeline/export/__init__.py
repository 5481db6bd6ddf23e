"""Stage 3, export: a run directory in, a verified ``model.tflite`` and its report out.

In: a run's ``model.keras`` and its test data — or any Keras model and, optionally, data
(:func:`export_model`, ``--keras``). Out, in the same run directory:
``model.tflite``, ``model.json`` and ``export_report.json`` / ``.md``. The steps, in order:

1. :mod:`~pipeline.export.keras_rewrite` — Keras model -> a Keras model LCE converts to
   bitpacked binary ops (each rewrite an exact identity);
2. :mod:`~pipeline.export.convert` — Keras -> flatbuffer with Larq Compute Engine, in a
   child process;
3. :mod:`pipeline.tflite.rewrite` — flatbuffer -> flatbuffer (int8 or k-bit packed weights,
   embedded metadata); with ``--kbit-fused``, :mod:`pipeline.tflite.kbit_chains` too (k-bit
   layers on bitlite's fused ops);
4. :mod:`~pipeline.export.exporter` — parity against Keras on LCE's and bitlite's
   interpreters, the report, and the CLI.
"""

from pipeline.export.exporter import export_model, export_run, main

__all__ = ["export_model", "export_run", "main"]

"""Scripts that print the committed tables in ``benchmarks/results/``.

Each is a module (``python -m benchmarks.NAME``) whose table header names the command that
printed it, the machine, its load and the date. Not the ``pipeline.bench`` CLI: these
drive the pipeline's stages to produce figures; they are not part of the pipeline.
"""

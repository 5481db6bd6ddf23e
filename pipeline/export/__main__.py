"""``python -m pipeline.export``: see :mod:`pipeline.export.exporter`."""

from pipeline import cli
from pipeline.export.exporter import main

cli.run(main)

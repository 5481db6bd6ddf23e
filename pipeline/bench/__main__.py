"""``python -m pipeline.bench``: see :mod:`pipeline.bench.cli`."""

from pipeline import cli
from pipeline.bench.cli import main

cli.run(main)

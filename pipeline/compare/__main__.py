"""``python -m pipeline.compare``: see :mod:`pipeline.compare.cli`."""

from pipeline import cli
from pipeline.compare.cli import main

cli.run(main)

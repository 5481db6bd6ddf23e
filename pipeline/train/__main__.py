"""``python -m pipeline.train``: see :mod:`pipeline.train.trainer`."""

from pipeline import cli
from pipeline.train.trainer import main

cli.run(main)

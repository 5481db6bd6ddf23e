"""Stage 5, compare: a grid file in, a table and plots of method × bits × model out.

In: a grid TOML. Each cell is an ordinary run (trained by :mod:`pipeline.train`, or by a
tool from its float cell), exported and optionally benchmarked. Out: ``results.csv``,
``results.md``, ``accuracy_vs_bits.png`` and ``accuracy_vs_size.png``.

- :mod:`~pipeline.compare.grid` — the grid file and running one cell
- :mod:`~pipeline.compare.schedule` — running the grid: order, retries, resume, progress
- :mod:`~pipeline.compare.executors` — where cells run: here, ``--jobs N``, ``--executor ray``
- :mod:`~pipeline.compare.cli` — ``python -m pipeline.compare``
- :mod:`~pipeline.compare.plots` — the two plots
"""

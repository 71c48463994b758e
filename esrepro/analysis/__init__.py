"""Aggregation of finished runs into the paper's tables and figures under ``paper/``.

- :mod:`~esrepro.analysis.runs`: the run loader; every ``run.json``, ``progress.csv`` and reference
  CSV is checked on read.
- :mod:`~esrepro.analysis.curves`: learning curves on common grids, means over seeds, first crossings.
- :mod:`~esrepro.analysis.render`: tables (CSV, Markdown, LaTeX) and figures (PNG, PDF, ...), the
  format chosen by each output's suffix, every file written atomically.
- One module per experiment: :mod:`~esrepro.analysis.mujoco_tasks` (summary, Tables 1 and 3,
  learning curves), :mod:`~esrepro.analysis.atari_games` (Table 2, Figure 2) and
  :mod:`~esrepro.analysis.scaling` (Figure 1).
"""

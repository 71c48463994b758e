"""Aggregation of finished runs: load ``progress.csv`` / ``run.json``, resample learning curves onto
common grids, and write the summary tables and learning-curve figures under ``paper/``."""

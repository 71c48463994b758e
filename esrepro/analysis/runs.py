"""Load finished runs into one long table and resample their learning curves onto common grids.

Every algorithm writes the same shared ``progress.csv`` columns (docs/design.md, data flow), so nothing
here branches on the algorithm. Curves of different seeds are sampled at different x values (an ES
iteration uses a variable number of timesteps), so they are compared on a common grid by step
interpolation: the value a run had reached at or before each grid point.
"""

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from esrepro.progress import SHARED_COLUMNS

ID_COLUMNS = ("algo", "env", "seed")
"""Columns identifying a run; taken from ``run.json``, never from the directory path."""

#: Columns every progress.csv must have; others are kept as they are.
PROGRESS_COLUMNS = SHARED_COLUMNS

RUN_KEYS = ("algo", "env", "seed", "wall_time_s", "config")
"""Keys every ``run.json`` must have."""


def load_run(run_dir: Path | str, meta_columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read one run directory into a table with ``algo``, ``env``, ``seed`` first.

    Parameters
    ----------
    run_dir : Path or str
        Directory holding ``progress.csv`` and ``run.json``.
    meta_columns : mapping of str to str, optional
        Extra scalar ``run.json`` values to add as constant columns after ``seed``: column name ->
        dotted key path, e.g. ``{"frame_skip": "config.frame_skip", "workers": "workers"}``.
        A run whose ``run.json`` lacks the path gets NaN there (callers that need it check).

    Returns
    -------
    DataFrame, shape (n_iterations, 3 + n_meta_columns + n_progress_columns)
        One row per iteration, sorted by ``iteration``. Columns of ``progress.csv`` named like the
        id or meta columns are replaced by the values of ``run.json``.

    Raises
    ------
    FileNotFoundError
        If either file is missing (the message names it).
    ValueError
        If ``run.json`` lacks a key or ``progress.csv`` lacks a column or has no rows.
    """
    run_dir = Path(run_dir)
    progress_path, meta_path = run_dir / "progress.csv", run_dir / "run.json"
    for path in (progress_path, meta_path):
        if not path.is_file():
            raise FileNotFoundError(f"run directory {run_dir} has no {path.name}: {path}")
    meta = json.loads(meta_path.read_text())
    missing_keys = [k for k in RUN_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing_keys:
        raise ValueError(f"{meta_path} lacks key(s) {', '.join(missing_keys)}")
    try:
        progress = pd.read_csv(progress_path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{progress_path} is empty") from err
    missing_columns = [c for c in PROGRESS_COLUMNS if c not in progress.columns]
    if missing_columns:
        raise ValueError(f"{progress_path} lacks column(s) {', '.join(missing_columns)}")
    if progress.empty:
        raise ValueError(f"{progress_path} has no rows")
    meta_columns = dict(meta_columns or {})
    progress = progress.drop(columns=[c for c in (*ID_COLUMNS, *meta_columns) if c in progress.columns])
    ids = pd.DataFrame({"algo": str(meta["algo"]), "env": str(meta["env"]),
                        "seed": int(meta["seed"])}, index=progress.index)
    for column, key_path in meta_columns.items():
        ids[column] = _lookup(meta, key_path)
    return pd.concat([ids, progress], axis=1).sort_values("iteration", ignore_index=True)


def _lookup(meta: dict, key_path: str) -> object:
    """``meta["a"]["b"]`` for ``key_path`` ``"a.b"``; NaN if a key on the way is missing."""
    value = meta
    for key in key_path.split("."):
        if not isinstance(value, dict) or key not in value:
            return np.nan
        value = value[key]
    return value


def load_runs(run_dirs: Iterable[Path | str],
              meta_columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read many run directories into one long table, one row per (run, iteration).

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories, each as accepted by :func:`load_run`.
    meta_columns : mapping of str to str, optional
        As in :func:`load_run`. These columns also identify a run, so runs that differ only in
        them (e.g. frame-skip variants, or scaling runs on different worker counts with the same
        seed) are allowed side by side.

    Returns
    -------
    DataFrame, shape (total_iterations, 3 + n_meta_columns + n_progress_columns)
        Columns ``algo``, ``env``, ``seed``, the meta columns, then the ``progress.csv`` columns;
        sorted by (algo, env, seed, meta columns..., iteration).

    Raises
    ------
    ValueError
        If no directory is given or two directories are the same (algo, env, seed, meta columns).
    """
    frames = [load_run(d, meta_columns) for d in run_dirs]
    if not frames:
        raise ValueError("no run directories given")
    runs = pd.concat(frames, ignore_index=True)
    keys = [*ID_COLUMNS, *(meta_columns or {})]
    per_run = runs.groupby(keys, dropna=False)["iteration"].agg(["size", "nunique"])
    duplicated = per_run[per_run["size"] > per_run["nunique"]]
    if not duplicated.empty:
        which = ", ".join(f"{k}={v}" for k, v in zip(keys, duplicated.index[0]))
        raise ValueError(f"more than one run directory (or repeated iterations) for {which}")
    return runs.sort_values([*keys, "iteration"], ignore_index=True)


def resample_curves(df: pd.DataFrame, x: str = "timesteps", y: str = "eval_return_mean",
                    grid: Iterable[float] | None = None, points: int = 50) -> pd.DataFrame:
    """Evaluate each seed's curve y(x) on a common grid by step interpolation.

    At a grid point g a seed takes the last y it reached at x <= g (for equal x, the last row).
    Grid points beyond a seed's last x are dropped for that seed, and so are points before its
    first x. Rows whose y is NaN (e.g. population statistics of the initial row) are ignored.

    Parameters
    ----------
    df : DataFrame
        Long table from :func:`load_runs` (needs ``algo``, ``env``, ``seed``, `x`, `y`).
    x, y : str
        Columns to use; x must be non-decreasing in the iteration order (cumulative counters).
    grid : iterable of float, optional
        Grid shared by all (algo, env) groups. Default: `points` log-spaced values per group from
        the smallest positive x to the largest final x over the group's seeds (both included).
    points : int
        Size of the default grid.

    Returns
    -------
    DataFrame, shape (n_samples, 5)
        Columns ``algo``, ``env``, ``seed``, ``x``, ``y`` (the names are literal, whichever
        columns `x` and `y` were), sorted by (algo, env, seed, x).
    """
    curves = df.loc[df[y].notna(), [*ID_COLUMNS, x, y]]
    fixed_grid = None if grid is None else np.unique(np.asarray(list(grid), dtype=float))
    pieces = []
    for (algo, env), group in curves.groupby(["algo", "env"], sort=True):
        group_grid = fixed_grid if fixed_grid is not None else _default_grid(group, x, points)
        for seed, run in group.groupby("seed", sort=True):
            run = run.sort_values(x, kind="stable")
            xs, ys = run[x].to_numpy(dtype=float), run[y].to_numpy(dtype=float)
            at = group_grid[(group_grid >= xs[0]) & (group_grid <= xs[-1])]
            values = ys[np.searchsorted(xs, at, side="right") - 1]
            pieces.append(pd.DataFrame({"algo": algo, "env": env, "seed": seed,
                                        "x": at, "y": values}))
    if not pieces:
        return pd.DataFrame({"algo": pd.Series(dtype=str), "env": pd.Series(dtype=str),
                             "seed": pd.Series(dtype=int), "x": pd.Series(dtype=float),
                             "y": pd.Series(dtype=float)})
    return pd.concat(pieces, ignore_index=True)


def _default_grid(group: pd.DataFrame, x: str, points: int) -> np.ndarray:
    """Log-spaced grid, shape (<= points,), from the smallest positive x to the largest final x."""
    positive = group.loc[group[x] > 0, x]
    if positive.empty:
        return np.empty(0)
    stop = group.groupby("seed")[x].max().max()
    return np.unique(np.geomspace(positive.min(), stop, points))


def common_coverage(resampled: pd.DataFrame) -> pd.DataFrame:
    """Keep the grid points that every seed of their (algo, env) group has a value at.

    Parameters
    ----------
    resampled : DataFrame
        Output of :func:`resample_curves`.

    Returns
    -------
    DataFrame
        The rows of `resampled` at commonly covered x, same columns, same order.
    """
    seeds_in_group = resampled.groupby(["algo", "env"])["seed"].transform("nunique")
    seeds_at_x = resampled.groupby(["algo", "env", "x"])["seed"].transform("nunique")
    return resampled[seeds_at_x == seeds_in_group].reset_index(drop=True)


def mean_curve(resampled: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds at the grid points all seeds of a group cover.

    Parameters
    ----------
    resampled : DataFrame
        Output of :func:`resample_curves`.

    Returns
    -------
    DataFrame, shape (n_points, 6)
        Columns ``algo``, ``env``, ``x``, ``mean``, ``std`` (sample standard deviation, ddof=1;
        0 for a group of one seed), ``n_seeds``; sorted by (algo, env, x).
    """
    stats = (common_coverage(resampled)
             .groupby(["algo", "env", "x"], sort=True)["y"]
             .agg(mean="mean", std="std", n_seeds="size")
             .reset_index())
    stats["std"] = stats["std"].where(stats["n_seeds"] > 1, 0.0)
    return stats



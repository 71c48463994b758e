"""Learning curves of different seeds on common grids, their mean, and first crossings.

Curves of different seeds are sampled at different x values (an ES iteration uses a variable number
of timesteps), so they are compared on a common grid by step interpolation: the value a run had
reached at or before each grid point.
"""

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from esrepro.analysis.runs import ID_COLUMNS


def resample_curves(df: pd.DataFrame, x: str = "timesteps", y: str = "eval_return_mean",
                    grid: Iterable[float] | None = None, points: int = 50) -> pd.DataFrame:
    """Evaluate each seed's curve y(x) on a common grid by step interpolation.

    At a grid point g a seed takes the last y it reached at x <= g (for equal x, the last row).
    Grid points beyond a seed's last x are dropped for that seed, and so are points before its
    first x. Rows whose y is NaN (e.g. population statistics of the initial row) are ignored.

    Parameters
    ----------
    df : DataFrame
        Long table from :func:`esrepro.analysis.runs.load_runs` (needs ``algo``, ``env``,
        ``seed``, `x`, `y`).
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


def first_reach(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                target: float) -> float:
    """The first x at which the curve y(x) reaches at least `target`.

    Used for the timesteps to reach a score of paper Table 3 and the time to target of Figure 1.
    Only the first crossing counts: later dips below the target do not matter, so non-monotone
    curves are fine.

    Parameters
    ----------
    x : array_like, shape (n,)
        Non-decreasing abscissae (e.g. timesteps).
    y : array_like, shape (n,)
        Curve values at `x`; NaN values never count as reaching the target.
    target : float
        Score to reach (``y >= target``); NaN is never reached.

    Returns
    -------
    float
        ``x[i]`` for the smallest ``i`` with ``y[i] >= target``; NaN if there is none.

    Raises
    ------
    ValueError
        If `x` and `y` are not 1-D of the same length, or `x` decreases somewhere.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {x.shape} and "
                         f"{y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError("x must be non-decreasing")
    hits = np.flatnonzero(y >= target)
    return float(x[hits[0]]) if hits.size else math.nan

"""Learning-curve figures: evaluation return against timesteps, one panel per environment.

Figures are drawn on matplotlib's Agg canvas through the object-oriented API (no pyplot, so no
global backend switch and no figures left open); the seaborn theme is applied inside an
``rc_context`` so the caller's rcParams are untouched.
"""

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib as mpl
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from esrepro.analysis.runs import common_coverage, load_runs, resample_curves
from esrepro.atomic import atomic_output

MAX_COLUMNS = 3
"""Panels per figure row."""


def plot_learning_curves(run_dirs: Iterable[Path | str], out_path: Path | str,
                         x: str = "timesteps") -> None:
    """Plot the mean ± sd over seeds of ``eval_return_mean`` against `x`, one panel per env.

    Each seed's curve is step-interpolated onto a log-spaced grid (:func:`resample_curves`) and
    only the grid points that every seed of an (algo, env) covers are drawn, so the mean is always
    over the same seeds. Algorithms share panels, one colour each (hue=algo). The band is seaborn's
    ``errorbar="sd"`` (sample sd, ddof=1; no band for a single seed).

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories (``progress.csv`` + ``run.json`` each).
    out_path : Path or str
        Output; the format follows the suffix (``.png`` at 150 dpi, ``.pdf``, or any other format
        matplotlib knows). Written atomically; parent directories are created.
    x : str
        Progress column for the (log-scaled) x axis, e.g. ``"timesteps"`` or ``"iteration"``.

    Raises
    ------
    ValueError
        If no run has an evaluation at a positive `x`.
    """
    curves = common_coverage(resample_curves(load_runs(run_dirs), x=x, y="eval_return_mean"))
    if curves.empty:
        raise ValueError(f"no eval_return_mean values at positive {x} to plot")
    envs = sorted(curves["env"].unique())
    algos = sorted(curves["algo"].unique())
    ncols = min(len(envs), MAX_COLUMNS)
    nrows = math.ceil(len(envs) / ncols)
    with mpl.rc_context():
        sns.set_theme(style="whitegrid")
        palette = dict(zip(algos, sns.color_palette(n_colors=len(algos))))
        fig = Figure(figsize=(4.5 * ncols, 3.4 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharey=False, squeeze=False).ravel()
        for ax, env in zip(axes, envs):
            sns.lineplot(data=curves[curves["env"] == env], x="x", y="y", hue="algo",
                         palette=palette, estimator="mean", errorbar="sd", legend=False, ax=ax)
            ax.set_xscale("log")
            ax.set(xlabel=x, ylabel="eval return", title=env)
        for ax in axes[len(envs):]:
            ax.set_visible(False)
        fig.legend(handles=[Line2D([], [], color=palette[a], label=a) for a in algos],
                   loc="outside right upper", title="algo")
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, dpi=150)

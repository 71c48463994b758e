"""Figure 1 of Salimans et al. 2017 (arXiv:1703.03864, §4.3): wall-clock time for ES to reach a
target score on 3D Humanoid against the number of CPU cores, median over repeats, log-log.

Definitions (docs/paper.md, claim 4 and "The experiment grid"):

- A run's *time to target* is the cumulative ``wall_time_s`` of its first progress row whose
  ``eval_return_mean`` (deterministic evaluation of the unperturbed policy) is at least the run's
  ``config.target_return``; a run that stops first never reached it.
- CPU cores are the run's Dask worker processes (``run.json`` ``workers``; one single-threaded
  worker per core).
- Per core count the *median over repeats* (seeds) is taken with never-reached repeats counted as
  slower than every repeat that reached the target (their time is at least their run length, often
  more); it is undefined (NaN) when half of the repeats or more never reached it.
- Speedup at c cores is median(c0) / median(c) with c0 the smallest core count, parallel efficiency
  is speedup / (c / c0); 1 is ideal linear speedup. The paper publishes only two points: 657 min on
  18 cores and 10 min on 1440 cores to a score of 6000 on gym Humanoid-v1, median of 7 repeats
  (``paper/reference/scaling_humanoid.csv``).
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from esrepro.analysis.curves import first_reach
from esrepro.analysis.render import check_outputs, fixed_text, save_figure, themed_figure, write_table
from esrepro.analysis.runs import RunSelectionError, load_runs, read_reference

META_COLUMNS = {"workers": "workers", "target_return": "config.target_return"}
"""``run.json`` values loaded beside the progress columns (:func:`load_runs` ``meta_columns``)."""

REQUIRED = {"es": tuple(META_COLUMNS)}
"""Meta columns every ES run must have as a number (:func:`load_runs` ``required``)."""

REFERENCE_NUMBERS = ("cpu_cores", "minutes_to_score_6000", "repeats")
"""Number columns of ``paper/reference/scaling_humanoid.csv``."""

PAPER_TARGET, PAPER_ENV = 6000.0, "Humanoid-v1"
"""The paper's target score and environment (gym, 2017) of Figure 1."""

SCALING_COLUMNS = ("source", "env", "target_return", "cpu_cores", "repeats", "reached",
                   "median_minutes", "speedup", "efficiency")
"""Columns of :func:`scaling_table`, in order."""


def time_to_target(run: pd.DataFrame, target: float) -> float:
    """Wall-clock seconds until one run first evaluates at `target` or above.

    Parameters
    ----------
    run : DataFrame
        One run's progress rows (``iteration``, ``wall_time_s`` cumulative seconds,
        ``eval_return_mean``), in any order.
    target : float
        Score to reach (``eval_return_mean >= target``; row 0, the initial policy, counts).

    Returns
    -------
    float
        ``wall_time_s`` of the first such row by iteration; NaN if there is none (the run stopped
        first, or `target` is NaN). Rows with a NaN evaluation never count.

    Raises
    ------
    ValueError
        If ``wall_time_s`` decreases with the iteration (not a cumulative clock).
    """
    run = run.sort_values("iteration")
    return first_reach(run["wall_time_s"], run["eval_return_mean"], target)


def repeat_times(runs_df: pd.DataFrame) -> pd.DataFrame:
    """Time to target of every run.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from ``load_runs(run_dirs, META_COLUMNS)``: all runs on one env with one
        ``target_return``.

    Returns
    -------
    DataFrame, shape (n_runs, 5)
        Columns ``cpu_cores`` (int, the run's workers), ``seed``, ``env``, ``target_return``,
        ``minutes`` (time to target in minutes, NaN if never reached); sorted by (cpu_cores, seed).

    Raises
    ------
    ValueError
        If a run lacks ``workers`` or ``target_return`` in ``run.json``, or a run's ``wall_time_s``
        decreases (:func:`write_scaling` reads files that cannot).
    RunSelectionError
        If the runs span more than one env or target.
    """
    missing = [c for c in META_COLUMNS if c not in runs_df.columns]
    if missing:
        raise ValueError(f"runs_df lacks column(s) {', '.join(missing)}; load it with "
                         f"load_runs(dirs, META_COLUMNS)")
    rows = []
    for (env, seed, workers, target), run in runs_df.groupby(["env", "seed", *META_COLUMNS],
                                                             dropna=False, sort=True):
        where = f"run env={env} seed={seed} workers={workers}"
        cores, target = pd.to_numeric(pd.Series([workers, target]), errors="coerce")
        if np.isnan(cores) or np.isnan(target):
            raise ValueError(f"{where}: run.json needs numeric 'workers' and 'config.target_return',"
                             f" got {workers!r} and {target!r}")
        try:
            seconds = time_to_target(run, target)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        rows.append({"cpu_cores": int(cores), "seed": seed, "env": env, "target_return": target,
                     "minutes": seconds / 60.0})
    times = pd.DataFrame(rows).sort_values(["cpu_cores", "seed"], ignore_index=True)
    for column in ("env", "target_return"):
        if times[column].nunique() > 1:
            raise RunSelectionError(f"scaling runs must share one {column}, got "
                             f"{sorted(times[column].unique())}")
    return times


def _speedups(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``speedup`` and ``efficiency`` relative to the smallest ``cpu_cores`` of `table`."""
    base = table.loc[table["cpu_cores"].idxmin()]
    speedup = base["median_minutes"] / table["median_minutes"]
    return table.assign(speedup=speedup,
                        efficiency=speedup * base["cpu_cores"] / table["cpu_cores"])


def scaling_table(runs_df: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Figure 1 as a table: per core count, repeats, how many reached the target, median minutes
    to target, speedup and parallel efficiency; then the paper's two published points.

    Parameters
    ----------
    runs_df : DataFrame
        As in :func:`repeat_times`.
    reference : DataFrame
        ``paper/reference/scaling_humanoid.csv`` (columns ``cpu_cores``,
        ``minutes_to_score_6000``, ``repeats``).

    Returns
    -------
    DataFrame, shape (n_core_counts + 2, len(SCALING_COLUMNS))
        ``source`` ``"ours"`` rows sorted by ``cpu_cores``, then ``"paper"`` rows. ``median_minutes``
        as defined in the module docstring (NaN when undefined); ``speedup`` and ``efficiency``
        relative to the smallest core count of the same source (NaN where a median is NaN);
        ``reached`` is NaN for the paper (not published).

    Raises
    ------
    ValueError
        As :func:`repeat_times`, or if `reference` lacks a column.
    RunSelectionError
        As :func:`repeat_times`.
    """
    missing = [c for c in REFERENCE_NUMBERS if c not in reference.columns]
    if missing:
        raise ValueError(f"reference lacks column(s) {', '.join(missing)}")
    times = repeat_times(runs_df)
    per_cores = times.groupby("cpu_cores", sort=True)
    ours = pd.DataFrame({
        "source": "ours", "env": per_cores["env"].first(),
        "target_return": per_cores["target_return"].first(), "repeats": per_cores.size(),
        "reached": per_cores["minutes"].count(),
        # never reached = slower than all that did; an infinite median is undefined
        "median_minutes": per_cores["minutes"].agg(lambda m: np.median(m.fillna(np.inf))),
    }).rename_axis("cpu_cores").reset_index()
    ours["median_minutes"] = ours["median_minutes"].replace(np.inf, np.nan)
    paper = pd.DataFrame({
        "source": "paper", "env": PAPER_ENV, "target_return": PAPER_TARGET,
        "cpu_cores": reference["cpu_cores"], "repeats": reference["repeats"], "reached": np.nan,
        "median_minutes": reference["minutes_to_score_6000"].astype(float),
    }).sort_values("cpu_cores")
    table = pd.concat([_speedups(ours), _speedups(paper)], ignore_index=True)
    return table[list(SCALING_COLUMNS)]


def scaling_caption(table: pd.DataFrame) -> str:
    """Caption of the scaling table: the target used, the env, and what differs from the paper."""
    ours = table[table["source"] == "ours"].iloc[0]
    same = "equals" if ours["target_return"] == PAPER_TARGET else "differs from"
    return (f"Figure 1 (scaling): wall-clock minutes for ES to reach an evaluation return of "
            f"{ours['target_return']:g} on {ours['env']} against CPU cores (Dask worker processes), "
            f"median over repeats (a repeat that never reached the target counts as slower than "
            f"all that did; n/a when half or more never did); speedup and parallel efficiency "
            f"relative to the fewest cores of the same source. Our target {ours['target_return']:g}"
            f" {same} the paper's {PAPER_TARGET:g}, and the paper used gym {PAPER_ENV}, whose "
            f"dynamics and observations differ from {ours['env']}; it publishes only the two "
            f"'paper' rows (median of 7 repeats).")


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, as a reader sees it."""
    return pd.DataFrame({
        "source": table["source"], "env": table["env"],
        "target": table["target_return"].map("{:g}".format),
        "CPU cores": table["cpu_cores"].map(str), "repeats": table["repeats"].map(str),
        "reached": table["reached"].map(lambda v: "n/a" if np.isnan(v) else f"{v:.0f}"),
        "median minutes": table["median_minutes"].map(fixed_text),
        "speedup": table["speedup"].map(fixed_text), "efficiency": table["efficiency"].map(fixed_text),
    })


def _ideal(ax, cores: np.ndarray, minutes: float, **style) -> None:
    """Linear speedup through (cores[0], minutes) across the range of `cores`."""
    if np.isfinite(minutes):
        span = np.array([cores.min(), cores.max()], dtype=float)
        ax.plot(span, minutes * cores.min() / span, **style)


def plot_scaling(table: pd.DataFrame, times: pd.DataFrame,
                 out_paths: Iterable[Path | str]) -> Figure:
    """Draw Figure 1: log-log median minutes to target against CPU cores.

    Our medians (line and markers), each repeat that reached the target (small points), the ideal
    linear speedup through our smallest core count, and the paper's two points with their own
    linear-speedup line; 6 x 5 inches.

    Parameters
    ----------
    table : DataFrame
        From :func:`scaling_table`.
    times : DataFrame
        From :func:`repeat_times`.
    out_paths : iterable of Path or str
        Figure files, format by suffix (:func:`esrepro.analysis.render.save_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (one axes; not registered with pyplot).
    """
    ours, paper = (table[table["source"] == s] for s in ("ours", "paper"))
    target, env = ours["target_return"].iloc[0], ours["env"].iloc[0]
    with themed_figure(6.0, 5.0) as fig:
        blue, orange = sns.color_palette(n_colors=2)
        ax = fig.subplots()
        reached = times.dropna(subset=["minutes"])
        ax.scatter(reached["cpu_cores"], reached["minutes"], s=12, alpha=0.5, color=blue,
                   label="ours, each repeat")
        ax.plot(ours["cpu_cores"], ours["median_minutes"], "o-", color=blue,
                label=f"ours, median ({env}, target {target:g})")
        _ideal(ax, ours["cpu_cores"].to_numpy(), ours["median_minutes"].iloc[0], color=blue,
               linestyle="--", label="ours, linear speedup")
        ax.plot(paper["cpu_cores"], paper["median_minutes"], "s", color=orange,
                label=f"paper, median of 7 ({PAPER_ENV}, target {PAPER_TARGET:g})")
        _ideal(ax, paper["cpu_cores"].to_numpy(), paper["median_minutes"].iloc[0], color=orange,
               linestyle=":", label="paper, linear speedup")
        ax.set(xscale="log", yscale="log", xlabel="CPU cores", ylabel="minutes to target score")
        fig.legend(loc="outside lower center", ncols=2, fontsize="x-small")
        save_figure(fig, out_paths)
    return fig


def write_scaling(run_dirs: Iterable[Path | str], reference_csv: Path | str,
                  table_paths: Iterable[Path | str], figure_paths: Iterable[Path | str]) -> pd.DataFrame:
    """Load the scaling runs, write the table (:func:`scaling_table`) and Figure 1.

    The table goes to each of `table_paths` in the format its suffix names
    (:func:`esrepro.analysis.render.write_table`: ``.csv`` the frame as returned, ``.md``
    :func:`scaling_caption` and a Markdown table, ``.tex`` a booktabs table labelled
    ``tab:scaling``), the figure (:func:`plot_scaling`) to each of `figure_paths`.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        ES scaling run directories (``run.json`` with ``workers`` and ``config.target_return``).
    reference_csv : Path or str
        ``paper/reference/scaling_humanoid.csv``.
    table_paths : iterable of Path or str
        Table files, e.g. ``paper/tables/scaling.csv`` and ``.md``.
    figure_paths : iterable of Path or str
        Figure files, e.g. ``paper/figures/fig1_scaling.png`` and ``.pdf``.

    Returns
    -------
    DataFrame
        As :func:`scaling_table`.

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run or reference file (an ES run without
        ``workers`` or ``config.target_return`` included), or runs that disagree on the env or
        target, before anything is written.
    """
    table_paths, figure_paths = list(table_paths), list(figure_paths)
    check_outputs(tables=table_paths, figures=figure_paths)
    reference = read_reference(reference_csv, number_columns=REFERENCE_NUMBERS)
    runs = load_runs(run_dirs, META_COLUMNS, REQUIRED)
    table = scaling_table(runs, reference)
    write_table(table_paths, table, _display(table), scaling_caption(table), "tab:scaling")
    plot_scaling(table, repeat_times(runs), figure_paths)
    return table

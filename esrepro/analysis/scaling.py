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
- Optionally, the *simulated* parallel efficiency of ``benchmarks/scale_simulation.py`` (its CSV:
  :data:`SIMULATION_COLUMNS`, one row per batch rule and worker count): the real ES master, Dask
  scheduler and one real coordinator per host of 18 simulated workers whose rollouts are sleeps.
  Its efficiency is ideal / measured time per iteration (ideal: the work of the episodes that made
  the batch divided by N), not relative to the fewest cores, beside its ceiling (the efficiency with
  free coordination, the same episode lengths and rule); both are shown apart from the measured
  runs and labelled simulated. Both batch rules in the file are drawn unless one is chosen.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from esrepro.analysis.curves import first_reach
from esrepro.analysis.render import check_outputs, fixed_text, save_figure, themed_figure, write_table
from esrepro.analysis.runs import RunFileError, RunSelectionError, load_runs, read_reference
from esrepro.errors import InputError

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

SIMULATION_COLUMNS = ("batch", "workers", "iteration_s", "ideal_s", "efficiency", "ceiling")
"""Columns of ``benchmarks/results/scale_simulation.csv`` that Figure 1 reads: the batch rule
(``all`` or ``first_come``), simulated workers, measured and ideal seconds per iteration, efficiency =
ideal / measured, and the ceiling (the efficiency with free coordination)."""

BATCH_LABELS = {"all": "batch all (deterministic)", "first_come": "batch first_come (not deterministic)"}
"""How the table and figure name each batch rule's rows."""

SIMULATED = "simulated (benchmarks/scale_simulation.py)"
"""How the figure labels the simulated efficiencies."""


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


def scaling_table(runs_df: pd.DataFrame, reference: pd.DataFrame,
                  simulation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Figure 1 as a table: per core count, repeats, how many reached the target, median minutes
    to target, speedup and parallel efficiency; then the paper's two published points and, if
    given, the simulated efficiencies.

    Parameters
    ----------
    runs_df : DataFrame
        As in :func:`repeat_times`.
    reference : DataFrame
        ``paper/reference/scaling_humanoid.csv`` (columns ``cpu_cores``,
        ``minutes_to_score_6000``, ``repeats``).
    simulation : DataFrame, optional
        From :func:`read_simulation`: one ``simulated_rows`` row each, after the paper's.

    Returns
    -------
    DataFrame, shape (n_core_counts + 2 [+ len(simulation)], len(SCALING_COLUMNS))
        ``source`` ``"ours"`` rows sorted by ``cpu_cores``, then ``"paper"`` rows, then
        ``"simulated: <variant>"`` rows. ``median_minutes`` as defined in the module docstring (NaN
        when undefined); ``speedup`` and ``efficiency`` relative to the smallest core count of the
        same source (NaN where a median is NaN), for simulated rows the simulated efficiency and no
        speedup; ``reached`` is NaN for the paper (not published); ``repeats`` (Int64) is NA for
        simulated rows.

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
    parts = [_speedups(ours)[list(SCALING_COLUMNS)], _speedups(paper)[list(SCALING_COLUMNS)]]
    if simulation is not None:
        parts.append(simulated_rows(simulation))
    table = pd.concat(parts, ignore_index=True)
    return table.astype({"repeats": "Int64"})


def read_simulation(path: Path | str, batch: str | None = None) -> pd.DataFrame:
    """Read and check the simulation's CSV (:data:`SIMULATION_COLUMNS`; other columns are ignored).

    Parameters
    ----------
    path : Path or str
        ``benchmarks/results/scale_simulation.csv`` of ``benchmarks/scale_simulation.py``.
    batch : str, optional
        Keep only the rows of this batch rule (``all`` or ``first_come``); default: every row.

    Returns
    -------
    DataFrame, shape (n_rows, 5)
        Columns ``variant`` (str, :data:`BATCH_LABELS` of the rule), ``cpu_cores`` (int, the simulated
        workers), ``iteration_s`` (float, measured seconds per iteration), ``efficiency`` (float, ideal
        / measured), ``ceiling`` (float); sorted by (variant, cpu_cores).

    Raises
    ------
    RunFileError
        If the file is missing or damaged, lacks a column, holds a non-number in a number column or
        a batch rule other than ``all`` and ``first_come``, or has no row of `batch` (the message
        lists the rules it has).
    """
    sim = read_reference(path, SIMULATION_COLUMNS[:1], SIMULATION_COLUMNS[1:])
    rules = sim["batch"].astype(str)
    if unknown := sorted(set(rules) - set(BATCH_LABELS)):
        raise RunFileError(f"simulation file '{path}': unknown batch rule(s) {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(BATCH_LABELS)})")
    if batch is not None:
        if batch not in set(rules):
            raise RunFileError(f"simulation file '{path}': no rows of batch rule {batch!r} "
                               f"(its rules: {', '.join(sorted(set(rules)))})")
        sim, rules = sim[rules == batch], rules[rules == batch]
    return pd.DataFrame({"variant": rules.map(BATCH_LABELS), "cpu_cores": sim["workers"].astype(int),
                         "iteration_s": sim["iteration_s"].astype(float),
                         "efficiency": sim["efficiency"].astype(float), "ceiling": sim["ceiling"].astype(float)}
                        ).sort_values(["variant", "cpu_cores"], ignore_index=True)


def simulated_rows(simulation: pd.DataFrame) -> pd.DataFrame:
    """The simulated efficiencies as rows of :func:`scaling_table` (``source``
    ``"simulated: <variant>"``, ``efficiency`` as simulated, the other numbers NaN)."""
    return pd.DataFrame({"source": "simulated: " + simulation["variant"], "env": np.nan,
                         "target_return": np.nan, "cpu_cores": simulation["cpu_cores"], "repeats": pd.NA,
                         "reached": np.nan, "median_minutes": np.nan, "speedup": np.nan,
                         "efficiency": simulation["efficiency"]})[list(SCALING_COLUMNS)]


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
            f"'paper' rows (median of 7 repeats)." + (
                " The 'simulated' rows are not runs: benchmarks/scale_simulation.py times the real ES "
                "master, Dask scheduler and one coordinator per host of 18 simulated workers whose rollouts "
                "are sleeps; their efficiency is ideal / measured time per iteration (the figure also draws "
                "each rule's ceiling, its efficiency with free coordination)."
                if table["source"].str.startswith("simulated").any() else ""))


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, as a reader sees it."""
    return pd.DataFrame({
        "source": table["source"], "env": table["env"].fillna("n/a"),
        "target": table["target_return"].map(lambda v: "n/a" if np.isnan(v) else f"{v:g}"),
        "CPU cores": table["cpu_cores"].map(str),
        "repeats": table["repeats"].map(lambda v: "n/a" if pd.isna(v) else str(v)),
        "reached": table["reached"].map(lambda v: "n/a" if np.isnan(v) else f"{v:.0f}"),
        "median minutes": table["median_minutes"].map(fixed_text),
        "speedup": table["speedup"].map(fixed_text), "efficiency": table["efficiency"].map(fixed_text),
    })


def _ideal(ax, cores: np.ndarray, minutes: float, **style) -> None:
    """Linear speedup through (cores[0], minutes) across the range of `cores`."""
    if np.isfinite(minutes):
        span = np.array([cores.min(), cores.max()], dtype=float)
        ax.plot(span, minutes * cores.min() / span, **style)


def plot_scaling(table: pd.DataFrame, times: pd.DataFrame, out_paths: Iterable[Path | str],
                 simulation: pd.DataFrame | None = None) -> Figure:
    """Draw Figure 1: minutes to target against CPU cores (left), parallel efficiency against CPU
    cores (right); 11 x 5 inches.

    Left, log-log: our medians (line and markers), each repeat that reached the target (small
    points), the ideal linear speedup through our smallest core count, and the paper's two points
    with their own linear-speedup line. Right, log x: our efficiency relative to our fewest cores,
    the paper's (1 at 18 cores, 0.82 at 1,440), ideal efficiency 1, and each simulated batch rule's
    curve, labelled ``"simulated (benchmarks/scale_simulation.py)"``, with its ceiling (dotted).

    Parameters
    ----------
    table : DataFrame
        From :func:`scaling_table`.
    times : DataFrame
        From :func:`repeat_times`.
    out_paths : iterable of Path or str
        Figure files, format by suffix (:func:`esrepro.analysis.render.save_figure`).
    simulation : DataFrame, optional
        From :func:`read_simulation`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (two axes; not registered with pyplot).
    """
    ours, paper = (table[table["source"] == s] for s in ("ours", "paper"))
    target, env = ours["target_return"].iloc[0], ours["env"].iloc[0]
    variants = [] if simulation is None else list(dict.fromkeys(simulation["variant"]))
    with themed_figure(11.0, 5.0) as fig:
        blue, orange, *others = sns.color_palette(n_colors=2 + max(len(variants), 1))
        ax, eff = fig.subplots(1, 2)
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

        eff.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        eff.plot(ours["cpu_cores"], ours["efficiency"], "o-", color=blue, label="_ours")
        last = paper.iloc[-1]
        eff.plot(paper["cpu_cores"], paper["efficiency"], "s", color=orange,
                 label=f"paper: {last['efficiency']:.2f} at {last['cpu_cores']:,} cores")
        for variant, color in zip(variants, others):
            rows = simulation[simulation["variant"] == variant]
            eff.plot(rows["cpu_cores"], rows["efficiency"], "^-.", color=color, label=f"{SIMULATED}: {variant}")
            eff.plot(rows["cpu_cores"], rows["ceiling"], ":", color=color, linewidth=1,
                     label=f"simulated ceiling (free coordination): {variant}")
        top = np.nanmax([1.0, *table["efficiency"]])
        eff.set(xscale="log", ylim=(0.0, 1.05 * top), xlabel="CPU cores",
                ylabel="parallel efficiency (1 = linear speedup)")
        fig.legend(loc="outside lower center", ncols=2, fontsize="x-small")
        save_figure(fig, out_paths)
    return fig


def write_scaling(run_dirs: Iterable[Path | str], reference_csv: Path | str,
                  table_paths: Iterable[Path | str], figure_paths: Iterable[Path | str],
                  simulation_csv: Path | str | None = None, batch: str | None = None) -> pd.DataFrame:
    """Load the scaling runs (and the simulation's CSV, if given), write the table
    (:func:`scaling_table`) and Figure 1.

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
    simulation_csv : Path or str, optional
        ``benchmarks/results/scale_simulation.csv`` (:func:`read_simulation`).
    batch : str, optional
        Only this batch rule of the simulation (needs `simulation_csv`); default: both.

    Returns
    -------
    DataFrame
        As :func:`scaling_table`.

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run or reference file (an ES run without
        ``workers`` or ``config.target_return`` included), a damaged simulation file or one
        without `batch`, `batch` without a simulation file, or runs that disagree on the env or
        target, before anything is written.
    """
    if batch is not None and simulation_csv is None:
        raise InputError(f"simulation batch rule {batch!r} given without a simulation file")
    table_paths, figure_paths = list(table_paths), list(figure_paths)
    check_outputs(tables=table_paths, figures=figure_paths)
    reference = read_reference(reference_csv, number_columns=REFERENCE_NUMBERS)
    simulation = None if simulation_csv is None else read_simulation(simulation_csv, batch)
    runs = load_runs(run_dirs, META_COLUMNS, REQUIRED)
    table = scaling_table(runs, reference, simulation)
    write_table(table_paths, table, _display(table), scaling_caption(table), "tab:scaling")
    plot_scaling(table, repeat_times(runs), figure_paths, simulation)
    return table

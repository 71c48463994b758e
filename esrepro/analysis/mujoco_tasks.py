"""The MuJoCo experiment of Salimans et al. 2017 (arXiv:1703.03864, §4.1): the ES summary table,
Tables 1 and 3 (ES vs TRPO data efficiency) and the learning-curve figures.

Definitions of Tables 1 and 3 (docs/paper.md, "How the tables are defined"; paper Tables 1 and 3):

- Curves are means over seeds of the deterministic evaluation return (``eval_return_mean``)
  against environment timesteps, one mean curve per (algorithm, environment).
- TRPO's *learning progress* is measured from its initial score: with ``initial`` the TRPO mean
  curve at its first point (timesteps 0, the initial policy) and ``final`` the TRPO mean curve at
  the budget (the paper: 5M timesteps), the score level of ``p`` percent is
  ``target(p) = initial + p / 100 * (final - initial)`` (the Table 3 scores fit this, not
  ``p / 100 * final``).
- Table 3 lists, per environment and level, the target score, the timesteps TRPO's and ES's mean
  curves first reach it, and their ratio; Table 1 lists only the ratios ES / TRPO.

Grid choice. Each run's curve is a step function of timesteps (the value of an evaluation holds
until the next one; :func:`esrepro.analysis.curves.resample_curves`), so the mean over seeds is also
a step function whose steps lie at the union of the seeds' observed timesteps. Each (algorithm,
environment) group is therefore resampled on the union of its own observed timesteps: the mean
curve is then exact at every point where it can change, and a first crossing falls exactly on an
observed timestep. The default log grid would round every first crossing up to the next grid point
(by up to a factor of the grid spacing) and leave out timesteps 0, the initial policy. ES and TRPO
have different grids (an ES iteration uses a variable number of timesteps), which is why each
algorithm gets its own.

The TRPO column of the summary is the 100% row of the paper's Table 3: TRPO's score after 5M
timesteps on gym -v1 MuJoCo environments, whose dynamics differ from today's -v5 ones.
"""

import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from esrepro.analysis.curves import common_coverage, first_reach, mean_curve, resample_curves
from esrepro.analysis.render import check_outputs, fixed_text, save_figure, sci_text, themed_figure, write_table
from esrepro.analysis.runs import RunSelectionError, load_runs, read_reference, warn_left_out

X_COLUMN, Y_COLUMN = "timesteps", "eval_return_mean"
"""The curves compared: evaluation return against environment timesteps."""

ES_ALGO, TRPO_ALGO = "es", "trpo"
"""Values of the ``algo`` column (``run.json``) of the two algorithms compared."""

DEFAULT_LEVELS = (25, 50, 75, 100)
"""Percentages of TRPO's learning progress in the paper's Tables 1 and 3."""

TABLE3_COLUMNS = ("env", "trpo_preset", "progress_pct", "trpo_score", "trpo_timesteps", "es_timesteps", "ratio",
                  "ratio_text", "es_seeds", "trpo_seeds")
"""Columns of the Table 3 frame, in order."""

PRESET_COLUMN = "trpo_preset"
"""Column of the TRPO preset (config/trpo_params.schema.yaml ``preset``) a row compares against."""

PRESET_META = {PRESET_COLUMN: "config.preset"}
"""The ``meta_columns`` of :func:`esrepro.analysis.runs.load_runs` that give TRPO runs their preset."""

PRESET_BEFORE_PRESETS = "zoo"
"""The preset of a TRPO run whose run.json names none: runs from before presets existed ran the zoo's
settings (the schema's default)."""

NO_PROGRESS_TEXT = "n/a (no TRPO progress)"
"""``ratio_text`` of an environment where TRPO's final score is not above its initial one."""

PAPER_TABLE1_NUMBERS = tuple(f"progress_{p}" for p in DEFAULT_LEVELS)
PAPER_TABLE3_NUMBERS = ("progress_pct", "trpo_score", "trpo_timesteps", "es_timesteps", "ratio")
"""Number columns of ``table1_mujoco_ratios.csv`` and ``table3_mujoco_detail.csv`` (paper/reference),
beside their ``env`` column."""

SUMMARY_CAPTION = ("Deterministic evaluation of each seed's final ES policy, mean ± sd over seeds "
                   "(initial: the same evaluation before the first update). TRPO: the paper's Table 3 "
                   "score at 5M timesteps (gym -v1 dynamics, not directly comparable to -v5).")
"""Caption of the summary table."""

MAX_COLUMNS = 3
"""Panels per row of the learning-curve figure."""


def base_env_name(env: str) -> str:
    """Strip a gymnasium version suffix: ``"HalfCheetah-v5"`` -> ``"HalfCheetah"``."""
    return re.sub(r"-v\d+$", "", env)


def _paper_table3(path: Path | str) -> pd.DataFrame:
    return read_reference(path, ["env"], PAPER_TABLE3_NUMBERS)


# ---------------------------------------------------------------- summary

def summarize_es_mujoco(runs_df: pd.DataFrame, paper_table3: pd.DataFrame) -> pd.DataFrame:
    """One row per environment: run size, initial and final evaluation, and the paper's TRPO score.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from :func:`esrepro.analysis.runs.load_runs`; only rows with algo ``"es"`` are
        used (others are left out with a warning).
    paper_table3 : DataFrame
        ``table3_mujoco_detail.csv`` (columns env, progress_pct, trpo_score, ...).

    Returns
    -------
    DataFrame, shape (n_envs, 9)
        Columns: ``env``; ``seeds`` (count); ``iterations``, ``timesteps`` (env steps) and
        ``wall_time_s`` (s), each the mean over seeds of the run's final progress row;
        ``initial_eval_return`` (mean over seeds of the iteration-0 evaluation);
        ``final_eval_return_mean`` and ``final_eval_return_std`` (over seeds of the last
        iteration's evaluation; sample std, ddof=1, and 0 for one seed); ``trpo_final_score_paper``
        (Table 3, progress 100%, matched on the env name without its ``-vN`` suffix; NaN when the
        paper has no such env). Sorted by env.

    Raises
    ------
    RunSelectionError
        If there are no ES rows, or a run has no iteration-0 row.
    """
    warn_left_out(runs_df, runs_df["algo"] != ES_ALGO, "the ES summary", "not ES")
    es = runs_df[runs_df["algo"] == ES_ALGO]
    if es.empty:
        raise RunSelectionError("no ES runs (algo == 'es') to summarize")
    runs = es.sort_values(["env", "seed", "iteration"]).groupby(["env", "seed"], sort=True)
    first, final = runs.head(1), runs.tail(1)
    not_initial = first[first["iteration"] != 0]
    if not not_initial.empty:
        env, seed = not_initial.iloc[0][["env", "seed"]]
        raise RunSelectionError(f"ES run env={env} seed={seed} has no iteration-0 row in progress.csv")
    per_env = final.groupby("env", sort=True)
    table = pd.DataFrame({
        "seeds": per_env["seed"].size(),
        "iterations": per_env["iteration"].mean(),
        "timesteps": per_env["timesteps"].mean(),
        "wall_time_s": per_env["wall_time_s"].mean(),
        "initial_eval_return": first.groupby("env")["eval_return_mean"].mean(),
        "final_eval_return_mean": per_env["eval_return_mean"].mean(),
        "final_eval_return_std": per_env["eval_return_mean"].std(ddof=1),
    }).rename_axis("env").reset_index()
    table["final_eval_return_std"] = table["final_eval_return_std"].where(table["seeds"] > 1, 0.0)
    trpo_final = paper_table3[paper_table3["progress_pct"] == 100].set_index("env")["trpo_score"]
    table["trpo_final_score_paper"] = table["env"].map(base_env_name).map(trpo_final)
    return table


def _summary_display(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as strings: returns and wall time to 1 decimal, timesteps as a whole number,
    iterations as one when it is, a missing TRPO score as ``n/a``."""
    return pd.DataFrame({
        "env": table["env"],
        "seeds": table["seeds"].map(str),
        "iterations": table["iterations"].map(_number),
        "timesteps": table["timesteps"].map("{:.0f}".format),
        "wall time (s)": table["wall_time_s"].map("{:.1f}".format),
        "initial eval return": table["initial_eval_return"].map("{:.1f}".format),
        "final eval return (mean ± sd)": [
            f"{m:.1f} ± {s:.1f}" for m, s in
            zip(table["final_eval_return_mean"], table["final_eval_return_std"])],
        "TRPO final score (paper, 5M steps)": table["trpo_final_score_paper"].map(
            lambda v: "n/a" if np.isnan(v) else f"{v:.2f}"),
    })


def _number(value: float) -> str:
    """A count-like mean: ``"12"`` when integral, else one decimal (``"12.5"``)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def write_summary(run_dirs: Iterable[Path | str], paper_table3_csv: Path | str,
                  out_paths: Iterable[Path | str]) -> pd.DataFrame:
    """Load the runs, summarize them (:func:`summarize_es_mujoco`) and write the table.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories (``progress.csv`` + ``run.json`` each).
    paper_table3_csv : Path or str
        The paper's ``table3_mujoco_detail.csv``.
    out_paths : iterable of Path or str
        Table files, format by suffix (:func:`esrepro.analysis.render.write_table`; label
        ``tab:es_mujoco_summary``).

    Returns
    -------
    DataFrame
        The table written.

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run or reference file, or runs that make no
        summary (:func:`summarize_es_mujoco`), before anything is written.
    """
    out_paths = list(out_paths)
    check_outputs(tables=out_paths)
    table = summarize_es_mujoco(load_runs(run_dirs), _paper_table3(paper_table3_csv))
    write_table(out_paths, table, _summary_display(table), SUMMARY_CAPTION, "tab:es_mujoco_summary")
    return table


# ---------------------------------------------------------------- Tables 1 and 3

def _level_name(p: float) -> str:
    """``25`` -> ``"25"``, ``12.5`` -> ``"12.5"`` (column suffixes of Table 1)."""
    return f"{p:g}"


def load_compared_runs(run_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """:func:`esrepro.analysis.runs.load_runs` with the column :data:`PRESET_COLUMN`: a TRPO run's
    preset from its run.json (:data:`PRESET_BEFORE_PRESETS` where it names none), NaN for other runs.
    Runs that differ only in their preset may be loaded side by side."""
    runs = load_runs(run_dirs, PRESET_META)
    is_trpo = runs["algo"] == TRPO_ALGO
    preset = runs[PRESET_COLUMN].astype(object)
    runs[PRESET_COLUMN] = preset.where(~is_trpo | preset.notna(), PRESET_BEFORE_PRESETS)
    return runs


def trpo_levels(runs_df: pd.DataFrame, env: str, budget_timesteps: float | None = None,
                levels: Iterable[float] = DEFAULT_LEVELS) -> pd.DataFrame:
    """TRPO's side of Table 3 for one env: the score levels of its learning progress and the
    timesteps its mean curve over seeds first reaches them (definitions: :func:`mujoco_tables`).

    Parameters
    ----------
    runs_df : DataFrame
        Long table of :func:`esrepro.analysis.runs.load_runs`; its TRPO runs on ``env`` are used
        (one preset: they are averaged).
    env : str
        The env id, e.g. ``"InvertedPendulum-v5"``.
    budget_timesteps, levels
        As in :func:`mujoco_tables`.

    Returns
    -------
    DataFrame, shape (n_levels, 4)
        ``progress_pct``; ``trpo_score`` (the level's score); ``trpo_timesteps`` (first reach, NaN
        when TRPO made no progress: final <= initial); ``trpo_seeds``. No rows when no TRPO run on
        ``env`` has a commonly covered evaluation.

    Raises
    ------
    ValueError
        If a level is outside (0, 100].
    RunSelectionError
        If `budget_timesteps` is before the first point of TRPO's mean curve.
    """
    levels = _checked_levels(levels)
    x, mean, seeds = _mean_curve(runs_df, TRPO_ALGO, env)
    if x.size == 0:
        return pd.DataFrame(columns=["progress_pct", "trpo_score", "trpo_timesteps", "trpo_seeds"])
    initial, final, x, mean = _trpo_progress(env, x, mean, budget_timesteps)
    targets = [final if p == 100 else initial + p / 100 * (final - initial) for p in levels]
    return pd.DataFrame({
        "progress_pct": levels, "trpo_score": targets,
        "trpo_timesteps": [first_reach(x, mean, t) if final > initial else math.nan for t in targets],
        "trpo_seeds": seeds})


def _checked_levels(levels: Iterable[float]) -> list[float]:
    levels = [float(p) for p in levels]
    bad = [p for p in levels if not 0 < p <= 100]
    if bad or not levels:
        raise ValueError(f"levels must be non-empty percentages in (0, 100], got {levels}")
    return levels


def _mean_curve(runs_df: pd.DataFrame, algo: str, env: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean curve over seeds of one (algo, env) group on the union of its observed timesteps.

    Returns
    -------
    x, mean : ndarray, shape (n_points,)
        Commonly covered timesteps (every seed has been evaluated at or before each, and none has
        ended before it) and the mean evaluation return there; empty if there is no such point.
    n_seeds : int
        Seeds with at least one evaluation.
    """
    group = runs_df[(runs_df["algo"] == algo) & (runs_df["env"] == env)]
    observed = group.loc[group[Y_COLUMN].notna(), X_COLUMN].unique()
    resampled = resample_curves(group, X_COLUMN, Y_COLUMN, grid=observed)
    curve = mean_curve(resampled)
    return (curve["x"].to_numpy(dtype=float), curve["mean"].to_numpy(dtype=float),
            int(resampled["seed"].nunique()))


def _trpo_progress(env: str, x: np.ndarray, mean: np.ndarray,
                   budget_timesteps: float | None) -> tuple[float, float, np.ndarray, np.ndarray]:
    """TRPO's initial and final score, and its mean curve cut at the budget."""
    if budget_timesteps is None:
        end = len(x)
    else:
        if budget_timesteps < x[0]:
            raise RunSelectionError(f"{env}: budget_timesteps={budget_timesteps:g} is before the first "
                                    f"point of TRPO's mean curve ({x[0]:g} timesteps)")
        if budget_timesteps > x[-1]:
            warnings.warn(f"{env}: TRPO's mean curve ends at {x[-1]:g} timesteps, before "
                          f"budget_timesteps={budget_timesteps:g}; its last point is used as the "
                          f"final score", stacklevel=3)
        end = int(np.searchsorted(x, budget_timesteps, side="right"))
    return float(mean[0]), float(mean[end - 1]), x[:end], mean[:end]


def mujoco_tables(runs_df: pd.DataFrame, budget_timesteps: float | None = None,
                  levels: Iterable[float] = DEFAULT_LEVELS, *,
                  paper_table1: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paper Tables 1 and 3: ES and TRPO timesteps to reach fractions of TRPO's learning progress,
    one row group per environment and TRPO preset.

    For each environment with both ES and TRPO runs, and each TRPO preset run there, each
    algorithm's runs are averaged into a mean curve of ``eval_return_mean`` against ``timesteps``
    on the union of that algorithm's observed timesteps (exact for step curves; see the module
    docstring), keeping the points every seed covers. With ``initial`` the TRPO mean curve at its
    first point and ``final`` the TRPO mean curve at `budget_timesteps` (the last point at or before
    it; default: TRPO's last commonly covered point), the level ``p`` has target score
    ``initial + p / 100 * (final - initial)`` (exactly ``final`` for p = 100; docs/paper.md, "How
    the tables are defined"). TRPO's timesteps are the first reach of the target on its mean curve
    up to the budget (:func:`trpo_levels`), ES's the first reach on its whole mean curve (ES may
    need more than the budget, as in paper Table 3). The ES runs are the same for every preset.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from :func:`load_compared_runs` (with :data:`PRESET_COLUMN`). Rows of algorithms
        other than ``"es"`` and ``"trpo"`` are left out with a warning.
    budget_timesteps : float, optional
        Timesteps at which TRPO's final score is taken (the paper: 5e6). A warning is given when
        TRPO's mean curve ends before it (its last point is used).
    levels : iterable of float
        Percentages of learning progress, each in (0, 100].
    paper_table1 : DataFrame
        The paper's Table 1 (columns env, progress_<p>, ...), e.g. read from
        ``paper/reference/table1_mujoco_ratios.csv``.

    Returns
    -------
    table1 : DataFrame, shape (n_envs * n_presets, 2 + 2 * n_levels)
        ``env``; ``trpo_preset``; ``progress_<p>``: the ``ratio_text`` of Table 3 per level;
        ``paper_<p>``: the paper's Table 1 ratio (float; NaN where the paper has no such env or
        level, matched on the env name without its ``-vN`` suffix). Sorted by env, then preset.
    table3 : DataFrame, shape (n_envs * n_presets * n_levels, 10)
        Columns :data:`TABLE3_COLUMNS`: ``env``; ``trpo_preset``; ``progress_pct`` (p);
        ``trpo_score`` (the target); ``trpo_timesteps`` and ``es_timesteps`` (first reach on each
        mean curve; NaN if never); ``ratio`` (es / trpo timesteps; NaN if ES never reaches the
        target); ``ratio_text`` (the ratio to 2 decimals; ``"> r"`` if ES never reaches the target,
        with r = ES's last commonly covered timesteps / TRPO's timesteps, a lower bound of the
        ratio; ``"n/a (no TRPO progress)"`` with NaN timesteps and ratio when ``final <=
        initial``); ``es_seeds`` and ``trpo_seeds`` (seeds averaged). Sorted by env, preset, level.

    Warns
    -----
    UserWarning
        For runs of other algorithms, and for every environment that has runs of only one of the
        two algorithms (it is left out).

    Raises
    ------
    ValueError
        If a level is outside (0, 100].
    RunSelectionError
        If `budget_timesteps` is before TRPO's first point.
    """
    levels = _checked_levels(levels)
    rows = []
    is_compared = runs_df["algo"].isin([ES_ALGO, TRPO_ALGO])
    warn_left_out(runs_df, ~is_compared, "Tables 1 and 3", "neither ES nor TRPO")
    compared = runs_df[is_compared]
    for env in sorted(compared["env"].unique()):
        es_x, es_mean, es_seeds = _mean_curve(compared, ES_ALGO, env)
        trpo = compared[(compared["algo"] == TRPO_ALGO) & (compared["env"] == env)]
        by_preset = {preset: trpo_levels(trpo[trpo[PRESET_COLUMN] == preset], env, budget_timesteps, levels)
                     for preset in sorted(trpo[PRESET_COLUMN].unique())}
        by_preset = {preset: table for preset, table in by_preset.items() if not table.empty}
        missing = [algo for algo, absent in ((TRPO_ALGO, not by_preset), (ES_ALGO, es_x.size == 0)) if absent]
        if missing:
            warnings.warn(f"{env}: no {' or '.join(missing)} runs with a commonly covered "
                          f"evaluation; environment left out of Tables 1 and 3", stacklevel=2)
            continue
        for preset, trpo_rows in by_preset.items():
            for level in trpo_rows.itertuples(index=False):
                trpo_t = level.trpo_timesteps
                row = {"env": env, PRESET_COLUMN: preset, "progress_pct": level.progress_pct,
                       "trpo_score": level.trpo_score, "trpo_timesteps": trpo_t, "es_seeds": es_seeds,
                       "trpo_seeds": level.trpo_seeds}
                es_t = first_reach(es_x, es_mean, level.trpo_score)
                if math.isnan(trpo_t):
                    row |= {"es_timesteps": math.nan, "ratio": math.nan, "ratio_text": NO_PROGRESS_TEXT}
                elif trpo_t > 0 and not math.isnan(es_t):
                    row |= {"es_timesteps": es_t, "ratio": es_t / trpo_t, "ratio_text": f"{es_t / trpo_t:.2f}"}
                elif trpo_t > 0:
                    row |= {"es_timesteps": es_t, "ratio": math.nan, "ratio_text": f"> {es_x[-1] / trpo_t:.2f}"}
                else:  # unreachable for p > 0 (TRPO starts below every target); kept for safety
                    row |= {"es_timesteps": es_t, "ratio": math.nan, "ratio_text": "n/a"}
                rows.append(row)
    table3 = pd.DataFrame(rows, columns=list(TABLE3_COLUMNS))
    if all(p.is_integer() for p in levels):
        table3["progress_pct"] = table3["progress_pct"].astype(int)
    table3 = table3.astype({"trpo_score": float, "trpo_timesteps": float, "es_timesteps": float,
                            "ratio": float, "ratio_text": object, "es_seeds": int,
                            "trpo_seeds": int})

    paper = paper_table1.set_index("env")
    table1 = table3[["env", PRESET_COLUMN]].drop_duplicates().reset_index(drop=True).astype(object)
    for p in levels:
        text = table3[table3["progress_pct"] == p].set_index(["env", PRESET_COLUMN])["ratio_text"]
        table1[f"progress_{_level_name(p)}"] = [text[key] for key in zip(table1["env"], table1[PRESET_COLUMN])]
    for p in levels:
        column = f"progress_{_level_name(p)}"
        published = paper[column] if column in paper.columns else pd.Series(dtype=float)
        table1[f"paper_{_level_name(p)}"] = (table1["env"].map(base_env_name).map(published)
                                             .astype(float))
    return table1, table3


def _budget_phrase(budget_timesteps: float | None) -> str:
    return ("at the end of TRPO's runs (last point all seeds cover)" if budget_timesteps is None
            else f"at {sci_text(float(budget_timesteps))} timesteps")


def _table1_display(table1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 with ours and the paper's ratio side by side per level, all strings."""
    shown = {"env": table1["env"], "TRPO preset": table1[PRESET_COLUMN]}
    for column in table1.columns:
        if column.startswith("progress_"):
            level = column.removeprefix("progress_")
            shown[f"{level}% (ours)"] = table1[column]
            shown[f"{level}% (paper)"] = table1[f"paper_{level}"].map(fixed_text)
    return pd.DataFrame(shown)


def _table3_display(table3: pd.DataFrame, paper3: pd.DataFrame) -> pd.DataFrame:
    """Table 3 with ours and the paper's numbers side by side, all strings."""
    paper3 = paper3.assign(env=paper3["env"].astype(str),
                           progress_pct=paper3["progress_pct"].astype(float))
    key = table3[["env", "progress_pct"]].assign(
        base=table3["env"].map(base_env_name), progress_pct=table3["progress_pct"].astype(float))
    paper = key.merge(paper3, how="left", left_on=["base", "progress_pct"],
                      right_on=["env", "progress_pct"], suffixes=("", "_paper"))
    es_text = [
        "not reached" if math.isnan(t) and text != NO_PROGRESS_TEXT else sci_text(t)
        for t, text in zip(table3["es_timesteps"], table3["ratio_text"])]
    return pd.DataFrame({
        "env": table3["env"].to_numpy(),
        "TRPO preset": table3[PRESET_COLUMN].to_numpy(),
        "progress (%)": table3["progress_pct"].map(lambda p: f"{p:g}").to_numpy(),
        "TRPO score": table3["trpo_score"].map(fixed_text).to_numpy(),
        "TRPO score (paper)": paper["trpo_score"].map(fixed_text).to_numpy(),
        "TRPO timesteps": table3["trpo_timesteps"].map(sci_text).to_numpy(),
        "TRPO timesteps (paper)": paper["trpo_timesteps"].map(sci_text).to_numpy(),
        "ES timesteps": es_text,
        "ES timesteps (paper)": paper["es_timesteps"].map(sci_text).to_numpy(),
        "ratio ES/TRPO": table3["ratio_text"].to_numpy(),
        "ratio (paper)": paper["ratio"].map(fixed_text).to_numpy(),
        "ES seeds": table3["es_seeds"].map(str).to_numpy(),
        "TRPO seeds": table3["trpo_seeds"].map(str).to_numpy(),
    })


def write_mujoco_tables(run_dirs: Iterable[Path | str], paper_table1_csv: Path | str,
                        paper_table3_csv: Path | str, table1_paths: Iterable[Path | str],
                        table3_paths: Iterable[Path | str], budget_timesteps: float | None = None,
                        levels: Iterable[float] = DEFAULT_LEVELS,
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load runs, build paper Tables 1 and 3 (:func:`mujoco_tables`) and write them.

    Each table is written to each of its paths in the format the suffix names
    (:func:`esrepro.analysis.render.write_table`): ``.csv`` the frame as returned, ``.md`` a caption
    line and a Markdown table, ``.tex`` a booktabs ``table`` with caption and label ``tab:table1`` /
    ``tab:table3``. Each row names the TRPO preset it compares against (its runs' run.json ``preset``;
    config/trpo_params.schema.yaml), and the captions list the presets. The Markdown and LaTeX
    tables put our numbers beside the paper's: Table 1 its
    published ratios, Table 3 ``trpo_score``, ``trpo_timesteps``, ``es_timesteps`` and ``ratio`` of
    `paper_table3_csv` (matched on env without ``-vN`` and level; ``n/a`` where absent).

    Parameters
    ----------
    run_dirs : iterable of Path or str
        ES and TRPO run directories (``progress.csv`` + ``run.json`` each); TRPO runs of several
        presets make one row group each.
    paper_table1_csv, paper_table3_csv : Path or str
        ``table1_mujoco_ratios.csv`` and ``table3_mujoco_detail.csv`` of ``paper/reference``.
    table1_paths, table3_paths : iterable of Path or str
        Output files, e.g. ``paper/tables/table1.csv``, ``.md``, ``.tex``.
    budget_timesteps : float, optional
        As in :func:`mujoco_tables` (the paper: 5e6).
    levels : iterable of float
        As in :func:`mujoco_tables`.

    Returns
    -------
    table1, table3 : DataFrame
        As returned by :func:`mujoco_tables`.

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run or reference file, or if no environment has
        both ES and TRPO runs (nothing is written).
    """
    table1_paths, table3_paths = list(table1_paths), list(table3_paths)
    check_outputs(tables=[*table1_paths, *table3_paths])
    levels = list(levels)
    paper_table1 = read_reference(paper_table1_csv, ["env"], PAPER_TABLE1_NUMBERS)
    paper_table3 = _paper_table3(paper_table3_csv)
    table1, table3 = mujoco_tables(load_compared_runs(run_dirs), budget_timesteps=budget_timesteps,
                                   levels=levels, paper_table1=paper_table1)
    if table3.empty:
        raise RunSelectionError("no environment has both ES and TRPO runs; Tables 1 and 3 not written")
    where = _budget_phrase(budget_timesteps)
    presets = f"TRPO preset {', '.join(sorted(table3[PRESET_COLUMN].unique()))} (config/trpo_params.schema.yaml)"
    levels_text = "/".join(_level_name(float(p)) for p in levels)
    caption1 = (f"Table 1: ES timesteps / TRPO timesteps to reach {levels_text}% of TRPO's "
                f"learning progress {where}, on mean curves over seeds; '> r': ES never reached "
                f"the level, r = ES's last timestep / TRPO's (a lower bound). Paper: Salimans et "
                f"al. 2017 Table 1 (gym -v1 dynamics). {presets}.")
    caption3 = (f"Table 3: score levels of TRPO's learning progress {where} (initial + p% of "
                f"final - initial) and the timesteps the mean curves over seeds of TRPO and ES "
                f"first reach them, beside Salimans et al. 2017 Table 3 (gym -v1 dynamics). {presets}.")
    write_table(table1_paths, table1, _table1_display(table1), caption1, "tab:table1")
    write_table(table3_paths, table3, _table3_display(table3, paper_table3), caption3, "tab:table3")
    return table1, table3


# ---------------------------------------------------------------- learning curves

def plot_learning_curves(run_dirs: Iterable[Path | str], out_paths: Iterable[Path | str],
                         x: str = "timesteps") -> Figure:
    """Plot the mean ± sd over seeds of ``eval_return_mean`` against `x`, one panel per env.

    Each seed's curve is step-interpolated onto a log-spaced grid
    (:func:`esrepro.analysis.curves.resample_curves`) and only the grid points that every seed of
    an (algo, env) covers are drawn, so the mean is always over the same seeds. Algorithms share
    panels, one colour each (hue=algo); TRPO runs are labelled with their preset, ``trpo
    (paper2017)``, so the runs of two presets make two curves. The band is seaborn's ``errorbar="sd"`` (sample sd,
    ddof=1; no band for a single seed). Up to :data:`MAX_COLUMNS` panels of 4.5 x 3.4 inches per
    row.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories (``progress.csv`` + ``run.json`` each).
    out_paths : iterable of Path or str
        Figure files, format by suffix (:func:`esrepro.analysis.render.save_figure`).
    x : str
        Progress column for the (log-scaled) x axis, e.g. ``"timesteps"`` or ``"iteration"``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (not registered with pyplot).

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run file, or if no run has an evaluation at a
        positive `x`.
    """
    out_paths = list(out_paths)
    check_outputs(figures=out_paths)
    runs = load_compared_runs(run_dirs)
    is_trpo = runs["algo"] == TRPO_ALGO
    runs.loc[is_trpo, "algo"] = TRPO_ALGO + " (" + runs.loc[is_trpo, PRESET_COLUMN] + ")"
    curves = common_coverage(resample_curves(runs, x=x, y=Y_COLUMN))
    if curves.empty:
        raise RunSelectionError(f"no eval_return_mean values at positive {x} to plot")
    envs = sorted(curves["env"].unique())
    algos = sorted(curves["algo"].unique())
    ncols = min(len(envs), MAX_COLUMNS)
    nrows = math.ceil(len(envs) / ncols)
    with themed_figure(4.5 * ncols, 3.4 * nrows) as fig:
        palette = dict(zip(algos, sns.color_palette(n_colors=len(algos))))
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
        save_figure(fig, out_paths)
    return fig

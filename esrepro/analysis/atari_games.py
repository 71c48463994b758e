"""Table 2 and Figure 2 of Salimans et al. 2017 (arXiv:1703.03864): ES on Atari beside the
published DQN, A3C FF (1 day), ES FF (1 hour) and A2C FF scores, and ES's frame-skip invariance.

Definitions (docs/paper.md, "How the tables are defined" and "The experiment grid"; paper §4.2 and §4.4):

- A run's final score is ``eval_return_mean`` of its last evaluated progress row: the mean over
  ``eval_episodes`` deterministic episodes of the unperturbed policy, each starting with up to 30
  random no-ops (the paper's ES protocol; our A2C baseline is evaluated the same way).
- Table 2 uses only ES runs with ``frame_skip`` 4, the A3C preprocessing; other frame-skips are the
  Figure 2 variants.
- Higher scores are better in every ALE game (Skiing's are negative). "Better than A3C" compares a
  score with the published A3C FF 1 day score of the same game; equal scores are ties.
- The published DQN and A3C columns use the human-starts protocol of Mnih et al. 2016, ES and A2C up
  to 30 random no-ops: the paper compares them without saying so (docs/paper.md).
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from esrepro.analysis.render import check_outputs, save_figure, themed_figure, write_table
from esrepro.analysis.runs import RunSelectionError, load_runs, read_reference, warn_left_out
from esrepro.envs.atari import game_name

ES_ALGO, A2C_ALGO = "es", "a2c"
"""Values of the ``algo`` column (``run.json``) of our ES and A2C runs."""

TABLE_FRAME_SKIP = 4
"""The frame-skip of the A3C protocol (Mnih et al. 2016); only these ES runs enter Table 2."""

META_COLUMNS = {"frame_skip": "config.frame_skip", "workers": "workers"}
"""``run.json`` values loaded beside the progress columns (:func:`load_runs` ``meta_columns``)."""

REQUIRED = {ES_ALGO: ("frame_skip",)}
"""Meta columns every ES run must have as a number (:func:`load_runs` ``required``)."""

SCORE_RANGES = {"Pong": (-21.0, 21.0)}
"""Fixed score axes of Figure 2 per game (the paper's Pong panel); other games use the data range."""

REFERENCE_ES_A3C_TEXT, REFERENCE_ES_A3C_NUMBERS = ("game", "ale_game"), ("dqn", "a3c_ff_1day", "es_ff_1hour")
REFERENCE_A2C_TEXT, REFERENCE_A2C_NUMBERS = ("ale_game", "a2c_ff_sign_verified"), ("a2c_ff_320m",)
REFERENCE_ES_A3C_COLUMNS = REFERENCE_ES_A3C_TEXT + REFERENCE_ES_A3C_NUMBERS
REFERENCE_A2C_COLUMNS = REFERENCE_A2C_TEXT + REFERENCE_A2C_NUMBERS
"""Columns read from ``atari_es_vs_a3c.csv`` and ``atari_hyperneat_a2c.csv`` (paper/reference): the
names of the game, then its published scores (the A2C one with its sign-verification flag)."""

ATARI_COLUMNS = (
    "game", "es_seeds", "es_final_mean", "es_final_std", "es_frames", "es_wall_time_h",
    "es_workers", "a2c_seeds", "a2c_final_mean", "a2c_final_std", "a2c_frames", "a2c_wall_time_h",
    "dqn_paper", "a3c_ff_1day_paper", "es_ff_1hour_paper", "a2c_ff_320m_paper",
    "a2c_ff_sign_verified_paper", "es_vs_a3c", "es_paper_vs_a3c")
"""Columns of :func:`atari_table`, in order."""

PAPER_BUDGETS = ("ES FF: 1 billion frames, about 1 hour on 720 CPUs; A3C FF: 1 day on 16 CPU "
                 "cores (Mnih et al. 2016); A2C FF: 320 million frames")
"""Training budgets of the published columns (paper §4.2 and Table 2)."""


def compare_scores(scores: Sequence[float] | pd.Series,
                   baseline: Sequence[float] | pd.Series) -> np.ndarray:
    """Element-wise outcome of `scores` against `baseline` (higher is better).

    Parameters
    ----------
    scores, baseline : array_like of float, shape (n,)
        Scores of the same games in the same order; NaN where a score is missing.

    Returns
    -------
    ndarray of object, shape (n,)
        ``"better"``, ``"worse"``, ``"tie"`` (exactly equal), or None where either is NaN.

    Raises
    ------
    ValueError
        If the two are not 1-D of the same length.
    """
    a, b = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"scores and baseline must be 1-D of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    return np.select([a > b, a < b, a == b], ["better", "worse", "tie"], default=None)


def count_better_worse(scores: Sequence[float] | pd.Series,
                       baseline: Sequence[float] | pd.Series) -> dict[str, int]:
    """How often `scores` beat, lose to and tie `baseline` (paper §4.2: ES FF 1 hour vs A3C FF
    1 day, better on 23 of 51 games and worse on 28).

    Parameters
    ----------
    scores, baseline : array_like of float, shape (n,)
        As in :func:`compare_scores`.

    Returns
    -------
    dict
        ``better``, ``worse``, ``ties`` and ``games`` (the pairs with both scores present).
    """
    outcome = list(compare_scores(scores, baseline))
    counts = {"better": outcome.count("better"), "worse": outcome.count("worse"),
              "ties": outcome.count("tie")}
    return counts | {"games": sum(counts.values())}


def _final_scores(runs: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per game: run count, mean and sd over runs of the final evaluation, frames, hours, workers.

    A run's frames are its ``frames`` column where present, else ``timesteps * frame_skip``.
    The sd is the sample sd (ddof=1), 0 for one run. Columns are prefixed with ``prefix``.
    """
    keys = ["env", "seed", *META_COLUMNS]
    evaluated = runs.dropna(subset=["eval_return_mean"])
    final = evaluated.groupby(keys, dropna=False, sort=False).tail(1)
    steps = final["timesteps"] * pd.to_numeric(final["frame_skip"], errors="coerce")
    frames = final["frames"].fillna(steps) if "frames" in final.columns else steps
    per_game = pd.DataFrame({
        "game": final["env"].map(game_name), "score": final["eval_return_mean"],
        "frames": frames, "wall_time_h": final["wall_time_s"] / 3600.0,
        "workers": pd.to_numeric(final["workers"], errors="coerce"),
    }).groupby("game", sort=True)
    table = pd.DataFrame({
        "seeds": per_game["score"].size(), "final_mean": per_game["score"].mean(),
        "final_std": per_game["score"].std(ddof=1).fillna(0.0),
        "frames": per_game["frames"].mean(), "wall_time_h": per_game["wall_time_h"].mean(),
        "workers": per_game["workers"].mean(),
    })
    return table.add_prefix(prefix + "_")


def _check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _check_es_frame_skips(runs_df: pd.DataFrame) -> None:
    """Every ES row of `runs_df` must know its frame_skip."""
    _check_columns(runs_df, META_COLUMNS, "runs_df (load it with load_runs(dirs, META_COLUMNS))")
    es = runs_df[runs_df["algo"] == ES_ALGO]
    unknown = es[pd.to_numeric(es["frame_skip"], errors="coerce").isna()]
    if not unknown.empty:
        env, seed = unknown.iloc[0][["env", "seed"]]
        raise ValueError(f"ES run env={env} seed={seed}: run.json has no numeric config.frame_skip")


def atari_table(runs_df: pd.DataFrame, reference_es_a3c: pd.DataFrame,
                reference_a2c: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 2 for the games we ran: our ES (and A2C) final scores beside the published ones.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from ``load_runs(run_dirs, META_COLUMNS)``. Rows with algo ``"es"`` and
        ``frame_skip`` 4 give the ES column, rows with algo ``"a2c"`` the A2C column; other runs
        (e.g. ES frame-skip variants) are left out with a warning.
    reference_es_a3c : DataFrame
        ``paper/reference/atari_es_vs_a3c.csv`` (paper Table 2, v1).
    reference_a2c : DataFrame
        ``paper/reference/atari_hyperneat_a2c.csv`` (the A2C FF column of paper Table 2, v2).

    Returns
    -------
    DataFrame, shape (n_games, len(ATARI_COLUMNS))
        One row per ALE game with an ES (frame_skip 4) or A2C run, sorted by game:
        ``es_seeds``/``a2c_seeds`` (runs), ``*_final_mean``/``*_final_std`` (mean and sample sd,
        ddof=1 and 0 for one run, of the final ``eval_return_mean``), ``*_frames`` (emulator
        frames of training, mean over runs), ``*_wall_time_h`` (hours, mean over runs),
        ``es_workers`` (Dask workers, mean over runs); NaN where there is no run of the algorithm.
        The published ``dqn_paper``, ``a3c_ff_1day_paper``, ``es_ff_1hour_paper``,
        ``a2c_ff_320m_paper`` and ``a2c_ff_sign_verified_paper`` (NaN for a game not in the paper);
        ``es_vs_a3c`` and ``es_paper_vs_a3c``: ours and the published ES against the published
        A3C, as :func:`compare_scores` (None where a score is missing).

    Raises
    ------
    ValueError
        If a reference lacks a column, `runs_df` lacks the meta columns, or an ES run has no
        ``frame_skip`` (:func:`write_atari_table` reads files that cannot).
    RunSelectionError
        If there is no ES run with frame_skip 4 and no A2C run.
    """
    _check_columns(reference_es_a3c, REFERENCE_ES_A3C_COLUMNS, "reference_es_a3c")
    _check_columns(reference_a2c, REFERENCE_A2C_COLUMNS, "reference_a2c")
    _check_es_frame_skips(runs_df)
    frame_skips = pd.to_numeric(runs_df["frame_skip"], errors="coerce")
    is_es = (runs_df["algo"] == ES_ALGO) & (frame_skips == TABLE_FRAME_SKIP)
    is_a2c = runs_df["algo"] == A2C_ALGO
    warn_left_out(runs_df, ~(is_es | is_a2c), "Table 2", f"neither ES with frame_skip "
                  f"{TABLE_FRAME_SKIP} nor A2C", META_COLUMNS)
    es, a2c = runs_df[is_es], runs_df[is_a2c]
    if es.empty and a2c.empty:
        raise RunSelectionError(f"no ES run with frame_skip {TABLE_FRAME_SKIP} and no A2C run; "
                         f"Table 2 needs at least one")
    ours = _final_scores(es, "es").join(_final_scores(a2c, "a2c"), how="outer")
    reference = (reference_es_a3c[list(REFERENCE_ES_A3C_COLUMNS[1:])]
                 .merge(reference_a2c[list(REFERENCE_A2C_COLUMNS)], on="ale_game", how="left")
                 .set_index("ale_game").add_suffix("_paper"))
    table = ours.join(reference, how="left").rename_axis("game").reset_index()
    table["es_vs_a3c"] = compare_scores(table["es_final_mean"], table["a3c_ff_1day_paper"])
    table["es_paper_vs_a3c"] = compare_scores(table["es_ff_1hour_paper"],
                                              table["a3c_ff_1day_paper"])
    return table[list(ATARI_COLUMNS)]


def _score(mean: float, std: float, seeds: float) -> str:
    """``"20.5 ± 0.5 (n=3)"``, or blank when there is no run."""
    return "" if np.isnan(mean) else f"{mean:.1f} ± {std:.1f} (n={seeds:.0f})"


def _published(value: float, sign_verified: object = True) -> str:
    """A published score to 1 decimal, ``?`` appended when its sign is not verified; ``n/a``."""
    if np.isnan(value):
        return "n/a"
    return f"{value:.1f}" + ("?" if str(sign_verified).lower() == "false" else "")


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The all-string table of the Markdown and LaTeX outputs."""
    return pd.DataFrame({
        "game": table["game"],
        "ES (ours)": [_score(*row) for row in
                      table[["es_final_mean", "es_final_std", "es_seeds"]].to_numpy(float)],
        "A2C (ours)": [_score(*row) for row in
                       table[["a2c_final_mean", "a2c_final_std", "a2c_seeds"]].to_numpy(float)],
        "DQN": table["dqn_paper"].map(_published),
        "A3C FF 1 day": table["a3c_ff_1day_paper"].map(_published),
        "ES FF 1 hour": table["es_ff_1hour_paper"].map(_published),
        "A2C FF 320M": [_published(v, ok) for v, ok in
                        zip(table["a2c_ff_320m_paper"], table["a2c_ff_sign_verified_paper"])],
        "ES (ours) vs A3C": table["es_vs_a3c"].fillna("n/a"),
    })


def _budget(table: pd.DataFrame, algo: str) -> str:
    """``"ES: 4e+06 frames and 0.50 h on 2 workers per run"`` from the per-game means."""
    runs = table[f"{algo}_seeds"].fillna(0)
    if runs.sum() == 0:
        return f"{algo.upper()}: no runs"

    def mean(column: str) -> float:  # over runs, from the per-game means; NaN if none is known
        values = table[f"{algo}_{column}"]
        known = values.notna() & (runs > 0)
        return float(np.average(values[known], weights=runs[known])) if known.any() else np.nan

    text = f"{algo.upper()}: {mean('frames'):.3g} frames and {mean('wall_time_h'):.2f} h"
    if algo == ES_ALGO and table["es_workers"].notna().any():
        text += f" on {mean('workers'):.3g} workers"
    return text + " per run"


def _counts_text(counts: dict[str, int]) -> str:
    return f"{counts['better']} better, {counts['worse']} worse, {counts['ties']} ties"


def atari_caption(table: pd.DataFrame, reference_es_a3c: pd.DataFrame) -> str:
    """The caption of the written Table 2: protocols, budgets and better/worse counts vs A3C."""
    ours = count_better_worse(table["es_final_mean"], table["a3c_ff_1day_paper"])
    published_here = count_better_worse(table["es_ff_1hour_paper"], table["a3c_ff_1day_paper"])
    published_all = count_better_worse(reference_es_a3c["es_ff_1hour"],
                                       reference_es_a3c["a3c_ff_1day"])
    return (
        f"Table 2 (Atari): final score, mean ± sd over runs of the deterministic evaluation of the "
        f"last policy, ES with frame-skip {TABLE_FRAME_SKIP}, beside Salimans et al. 2017 Table 2. "
        f"Protocol mismatch: the published DQN and A3C scores use human starts (Mnih et al. 2016), "
        f"ES and A2C (published and ours) up to 30 random no-ops. "
        f"Budgets, ours (mean over runs): {_budget(table, ES_ALGO)}; {_budget(table, A2C_ALGO)}. "
        f"Paper: {PAPER_BUDGETS}. "
        f"Against A3C FF 1 day: ES (ours) {_counts_text(ours)} of {ours['games']} games; "
        f"ES FF 1 hour (paper) {_counts_text(published_here)} of these "
        f"{published_here['games']} games, and {_counts_text(published_all)} of all "
        f"{published_all['games']} games in the paper. '?': sign not verified in the v2 table.")


def write_atari_table(run_dirs: Iterable[Path | str], ref_es_a3c_csv: Path | str,
                      ref_a2c_csv: Path | str, out_paths: Iterable[Path | str]) -> pd.DataFrame:
    """Load runs, build Table 2 (:func:`atari_table`) and write it.

    The table is written to each path in the format its suffix names
    (:func:`esrepro.analysis.render.write_table`): ``.csv`` the frame as returned, ``.md`` the
    caption and a Markdown table, ``.tex`` a booktabs ``table`` with the caption and label
    ``tab:table2``. The caption (:func:`atari_caption`) states the protocol mismatch, our and the
    paper's budgets, and the better/worse counts against A3C.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        ES and A2C Atari run directories (``progress.csv`` + ``run.json`` each; ES runs need
        ``config.frame_skip``).
    ref_es_a3c_csv, ref_a2c_csv : Path or str
        ``atari_es_vs_a3c.csv`` and ``atari_hyperneat_a2c.csv`` of ``paper/reference``.
    out_paths : iterable of Path or str
        Output files, e.g. ``paper/tables/atari.csv``, ``.md``, ``.tex``.

    Returns
    -------
    DataFrame
        As :func:`atari_table`.

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run or reference file, or runs that make no
        Table 2 (:func:`atari_table`), before anything is written.
    """
    out_paths = list(out_paths)
    check_outputs(tables=out_paths)
    reference_es_a3c = read_reference(ref_es_a3c_csv, REFERENCE_ES_A3C_TEXT, REFERENCE_ES_A3C_NUMBERS)
    reference_a2c = read_reference(ref_a2c_csv, REFERENCE_A2C_TEXT, REFERENCE_A2C_NUMBERS)
    table = atari_table(load_runs(run_dirs, META_COLUMNS, REQUIRED), reference_es_a3c, reference_a2c)
    write_table(out_paths, table, _display(table), atari_caption(table, reference_es_a3c), "tab:table2")
    return table


def plot_frameskip(run_dirs: Iterable[Path | str], game: str,
                   out_paths: Iterable[Path | str]) -> Figure:
    """Paper Figure 2: ES score against weight updates on one game, one line per frame-skip.

    Each line is the mean ± sd (sample sd, ddof=1; no band for one seed) over the seeds of one
    ``frame_skip`` (from ``run.json`` config) of ``eval_return_mean`` against ``iteration``
    (iteration 0: the initial policy), drawn only at iterations every seed of that frame-skip has
    reached. The score axis is fixed for games in :data:`SCORE_RANGES` (Pong: -21 to 21, as in the
    paper), otherwise it follows the data. The figure is 5 x 3.6 inches.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories; only ES runs of `game` are drawn, others are left out with a warning.
    game : str
        ALE game name, e.g. ``"Pong"`` (see :func:`esrepro.envs.atari.game_name`).
    out_paths : iterable of Path or str
        Figure files, format by suffix (:func:`esrepro.analysis.render.save_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (one axes; not registered with pyplot).

    Raises
    ------
    InputError
        For a bad output path, a missing or damaged run file (an ES run without
        ``config.frame_skip`` included), or if no ES run of `game` is given (the message lists the
        games found).
    """
    out_paths = list(out_paths)
    check_outputs(figures=out_paths)
    runs = load_runs(run_dirs, META_COLUMNS, REQUIRED)
    chosen = (runs["algo"] == ES_ALGO) & (runs["env"].map(game_name) == game)
    warn_left_out(runs, ~chosen, "Figure 2", f"not ES on {game}", META_COLUMNS)
    curves = runs[chosen].dropna(subset=["eval_return_mean"])
    if curves.empty:
        games = sorted(runs.loc[runs["algo"] == ES_ALGO, "env"].map(game_name).unique())
        raise RunSelectionError(f"game={game!r}: no ES run with evaluations; games found: {games}")
    curves = curves.assign(frame_skip=pd.to_numeric(curves["frame_skip"]).astype(int))
    seeds = curves.groupby("frame_skip")["seed"].transform("nunique")
    seeds_at = curves.groupby(["frame_skip", "iteration"])["seed"].transform("nunique")
    curves = curves[seeds_at == seeds]
    skips = sorted(curves["frame_skip"].unique())
    with themed_figure(5.0, 3.6) as fig:
        ax = fig.subplots()
        sns.lineplot(data=curves, x="iteration", y="eval_return_mean", hue="frame_skip",
                     hue_order=skips, palette=dict(zip(skips, sns.color_palette(n_colors=len(skips)))),
                     estimator="mean", errorbar="sd", ax=ax)
        if game in SCORE_RANGES:
            ax.set_ylim(*SCORE_RANGES[game])
        ax.set(xlabel="weight updates (iterations)", ylabel="score", title=game)
        ax.legend(title="frame-skip")
        save_figure(fig, out_paths)
    return fig

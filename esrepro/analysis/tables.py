"""Tables 1 and 3 of Salimans et al. 2017 (arXiv:1703.03864): ES vs TRPO data efficiency on MuJoCo.

Definitions (docs/paper.md, "How the tables are defined"; paper Tables 1 and 3):

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
until the next one; :func:`esrepro.analysis.runs.resample_curves`), so the mean over seeds is also a
step function whose steps lie at the union of the seeds' observed timesteps. Each (algorithm,
environment) group is therefore resampled on the union of its own observed timesteps: the mean
curve is then exact at every point where it can change, and a first crossing falls exactly on an
observed timestep. The default log grid would round every first crossing up to the next grid point
(by up to a factor of the grid spacing) and leave out timesteps 0, the initial policy. ES and TRPO
have different grids (an ES iteration uses a variable number of timesteps), which is why each
algorithm gets its own.
"""

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from esrepro.analysis.runs import load_runs, mean_curve, resample_curves
from esrepro.analysis.summary import base_env_name
from esrepro.atomic import atomic_output

X_COLUMN, Y_COLUMN = "timesteps", "eval_return_mean"
"""The curves compared: evaluation return against environment timesteps."""

ES_ALGO, TRPO_ALGO = "es", "trpo"
"""Values of the ``algo`` column (``run.json``) of the two algorithms compared."""

DEFAULT_LEVELS = (25, 50, 75, 100)
"""Percentages of TRPO's learning progress in the paper's Tables 1 and 3."""

TABLE3_COLUMNS = ("env", "progress_pct", "trpo_score", "trpo_timesteps", "es_timesteps", "ratio",
                  "ratio_text", "es_seeds", "trpo_seeds")
"""Columns of the Table 3 frame, in order."""

NO_PROGRESS_TEXT = "n/a (no TRPO progress)"
"""``ratio_text`` of an environment where TRPO's final score is not above its initial one."""


def first_reach(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                target: float) -> float:
    """The first x at which the curve y(x) reaches at least `target`.

    Used for the "timesteps to reach a score" of paper Table 3. Only the first crossing counts:
    later dips below the target do not matter, so non-monotone curves are fine.

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


def _level_name(p: float) -> str:
    """``25`` -> ``"25"``, ``12.5`` -> ``"12.5"`` (column suffixes of Table 1)."""
    return f"{p:g}"


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
            raise ValueError(f"{env}: budget_timesteps={budget_timesteps:g} is before the first "
                             f"point of TRPO's mean curve ({x[0]:g} timesteps)")
        if budget_timesteps > x[-1]:
            warnings.warn(f"{env}: TRPO's mean curve ends at {x[-1]:g} timesteps, before "
                          f"budget_timesteps={budget_timesteps:g}; its last point is used as the "
                          f"final score", stacklevel=3)
        end = int(np.searchsorted(x, budget_timesteps, side="right"))
    return float(mean[0]), float(mean[end - 1]), x[:end], mean[:end]


def mujoco_tables(runs_df: pd.DataFrame, budget_timesteps: float | None = None,
                  levels: Iterable[float] = DEFAULT_LEVELS, *,
                  paper_table1_csv: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paper Tables 1 and 3: ES and TRPO timesteps to reach fractions of TRPO's learning progress.

    For each environment with both ES and TRPO runs, each algorithm's runs are averaged into a mean
    curve of ``eval_return_mean`` against ``timesteps`` on the union of that algorithm's observed
    timesteps (exact for step curves; see the module docstring), keeping the points every seed
    covers. With ``initial`` the TRPO mean curve at its first point and ``final`` the TRPO mean
    curve at `budget_timesteps` (the last point at or before it; default: TRPO's last commonly
    covered point), the level ``p`` has target score ``initial + p / 100 * (final - initial)``
    (exactly ``final`` for p = 100; docs/paper.md, "How the tables are defined"). TRPO's timesteps are
    the first reach of the target on its mean curve up to the budget, ES's the first reach on its
    whole mean curve (ES may need more than the budget, as in paper Table 3).

    Parameters
    ----------
    runs_df : DataFrame
        Long table from :func:`esrepro.analysis.runs.load_runs`. Rows of algorithms other than
        ``"es"`` and ``"trpo"`` are ignored.
    budget_timesteps : float, optional
        Timesteps at which TRPO's final score is taken (the paper: 5e6). A warning is given when
        TRPO's mean curve ends before it (its last point is used).
    levels : iterable of float
        Percentages of learning progress, each in (0, 100].
    paper_table1_csv : Path or str
        The paper's Table 1 (columns env, progress_<p>, ...), e.g.
        ``paper/reference/table1_mujoco_ratios.csv``.

    Returns
    -------
    table1 : DataFrame, shape (n_envs, 1 + 2 * n_levels)
        ``env``; ``progress_<p>``: the ``ratio_text`` of Table 3 per level; ``paper_<p>``: the
        paper's Table 1 ratio (float; NaN where the paper has no such env or level, matched on the
        env name without its ``-vN`` suffix). Sorted by env.
    table3 : DataFrame, shape (n_envs * n_levels, 9)
        Columns :data:`TABLE3_COLUMNS`: ``env``; ``progress_pct`` (p); ``trpo_score`` (the target);
        ``trpo_timesteps`` and ``es_timesteps`` (first reach on each mean curve; NaN if never);
        ``ratio`` (es / trpo timesteps; NaN if ES never reaches the target); ``ratio_text`` (the
        ratio to 2 decimals; ``"> r"`` if ES never reaches the target, with r = ES's last commonly
        covered timesteps / TRPO's timesteps, a lower bound of the ratio; ``"n/a (no TRPO
        progress)"`` with NaN timesteps and ratio when ``final <= initial``); ``es_seeds`` and
        ``trpo_seeds`` (seeds averaged). Sorted by env, then level.

    Warns
    -----
    UserWarning
        For every environment that has runs of only one of the two algorithms (it is skipped).

    Raises
    ------
    ValueError
        If a level is outside (0, 100], or `budget_timesteps` is before TRPO's first point.
    """
    levels = [float(p) for p in levels]
    bad = [p for p in levels if not 0 < p <= 100]
    if bad or not levels:
        raise ValueError(f"levels must be non-empty percentages in (0, 100], got {levels}")
    rows = []
    compared = runs_df[runs_df["algo"].isin([ES_ALGO, TRPO_ALGO])]
    for env in sorted(compared["env"].unique()):
        curves = {algo: _mean_curve(compared, algo, env) for algo in (TRPO_ALGO, ES_ALGO)}
        missing = [algo for algo, (x, _, _) in curves.items() if x.size == 0]
        if missing:
            warnings.warn(f"{env}: no {' or '.join(missing)} runs with a commonly covered "
                          f"evaluation; environment left out of Tables 1 and 3", stacklevel=2)
            continue
        trpo_x, trpo_mean, trpo_seeds = curves[TRPO_ALGO]
        es_x, es_mean, es_seeds = curves[ES_ALGO]
        initial, final, trpo_x, trpo_mean = _trpo_progress(env, trpo_x, trpo_mean,
                                                           budget_timesteps)
        for p in levels:
            target = final if p == 100 else initial + p / 100 * (final - initial)
            row = {"env": env, "progress_pct": p, "trpo_score": target, "es_seeds": es_seeds,
                   "trpo_seeds": trpo_seeds}
            if not final > initial:
                row |= {"trpo_timesteps": math.nan, "es_timesteps": math.nan, "ratio": math.nan,
                        "ratio_text": NO_PROGRESS_TEXT}
            else:
                trpo_t = first_reach(trpo_x, trpo_mean, target)
                es_t = first_reach(es_x, es_mean, target)
                if trpo_t > 0 and not math.isnan(es_t):
                    ratio, text = es_t / trpo_t, f"{es_t / trpo_t:.2f}"
                elif trpo_t > 0:
                    ratio, text = math.nan, f"> {es_x[-1] / trpo_t:.2f}"
                else:  # unreachable for p > 0 (TRPO starts below every target); kept for safety
                    ratio, text = math.nan, "n/a"
                row |= {"trpo_timesteps": trpo_t, "es_timesteps": es_t, "ratio": ratio,
                        "ratio_text": text}
            rows.append(row)
    table3 = pd.DataFrame(rows, columns=list(TABLE3_COLUMNS))
    if all(p.is_integer() for p in levels):
        table3["progress_pct"] = table3["progress_pct"].astype(int)
    table3 = table3.astype({"trpo_score": float, "trpo_timesteps": float, "es_timesteps": float,
                            "ratio": float, "ratio_text": object, "es_seeds": int,
                            "trpo_seeds": int})

    paper = pd.read_csv(paper_table1_csv)
    paper = paper.set_index("env")
    envs = sorted(table3["env"].unique())
    table1 = pd.DataFrame({"env": pd.Series(envs, dtype=object)})
    for p in levels:
        text = table3[table3["progress_pct"] == p].set_index("env")["ratio_text"]
        table1[f"progress_{_level_name(p)}"] = table1["env"].map(text)
    for p in levels:
        column = f"progress_{_level_name(p)}"
        published = paper[column] if column in paper.columns else pd.Series(dtype=float)
        table1[f"paper_{_level_name(p)}"] = (table1["env"].map(base_env_name).map(published)
                                             .astype(float))
    return table1, table3


# ---------------------------------------------------------------- rendering

def _sci(value: float) -> str:
    """Timesteps as in the paper's Table 3: ``905000`` -> ``"9.05e5"``; NaN -> ``"n/a"``."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fixed_text(value: float) -> str:
    """A score or ratio to 2 decimals; NaN -> ``"n/a"``."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def _budget_phrase(budget_timesteps: float | None) -> str:
    return ("at the end of TRPO's runs (last point all seeds cover)" if budget_timesteps is None
            else f"at {_sci(float(budget_timesteps))} timesteps")


def _table1_display(table1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 with ours and the paper's ratio side by side per level, all strings."""
    shown = {"env": table1["env"]}
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
        "not reached" if math.isnan(t) and text != NO_PROGRESS_TEXT else _sci(t)
        for t, text in zip(table3["es_timesteps"], table3["ratio_text"])]
    return pd.DataFrame({
        "env": table3["env"].to_numpy(),
        "progress (%)": table3["progress_pct"].map(lambda p: f"{p:g}").to_numpy(),
        "TRPO score": table3["trpo_score"].map(fixed_text).to_numpy(),
        "TRPO score (paper)": paper["trpo_score"].map(fixed_text).to_numpy(),
        "TRPO timesteps": table3["trpo_timesteps"].map(_sci).to_numpy(),
        "TRPO timesteps (paper)": paper["trpo_timesteps"].map(_sci).to_numpy(),
        "ES timesteps": es_text,
        "ES timesteps (paper)": paper["es_timesteps"].map(_sci).to_numpy(),
        "ratio ES/TRPO": table3["ratio_text"].to_numpy(),
        "ratio (paper)": paper["ratio"].map(fixed_text).to_numpy(),
        "ES seeds": table3["es_seeds"].map(str).to_numpy(),
        "TRPO seeds": table3["trpo_seeds"].map(str).to_numpy(),
    })


def markdown_table(caption: str, shown: pd.DataFrame) -> str:
    """A caption line, a blank line, then the (all-string) table as Markdown."""
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=["left"] + ["right"] * (shown.shape[1] - 1))
    return caption + "\n\n" + markdown + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def _latex_escape(text: str) -> str:
    """Escape LaTeX special characters, including ``<`` and ``>`` (which pandas leaves as they
    are and the default OT1 font encoding prints as other glyphs)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


def latex_table(caption: str, label: str, shown: pd.DataFrame) -> str:
    """A booktabs ``table`` environment (pandas Styler; needs jinja2) with caption and label."""
    escaped = shown.map(_latex_escape)
    escaped.columns = [_latex_escape(c) for c in shown.columns]
    return escaped.style.hide(axis="index").to_latex(
        caption=_latex_escape(caption), label=label, hrules=True, position_float="centering",
        column_format="l" + "r" * (shown.shape[1] - 1))


def write_table_files(prefix: Path | str, frame: pd.DataFrame, markdown: str, latex: str) -> None:
    """Write ``<prefix>.csv``, ``.md`` and ``.tex``, each atomically."""
    prefix = Path(prefix)
    with atomic_output(prefix.with_name(prefix.name + ".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    for suffix, text in ((".md", markdown), (".tex", latex)):
        with atomic_output(prefix.with_name(prefix.name + suffix)) as tmp:
            tmp.write_text(text, encoding="utf-8")


def write_mujoco_tables(run_dirs: Iterable[Path | str], paper_table1_csv: Path | str,
                        paper_table3_csv: Path | str, out_prefix_table1: Path | str,
                        out_prefix_table3: Path | str, budget_timesteps: float | None = None,
                        levels: Iterable[float] = DEFAULT_LEVELS,
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load runs, build paper Tables 1 and 3 (:func:`mujoco_tables`) and write them.

    Writes, each atomically (parent directories created), for ``P`` in the two prefixes:
    ``P.csv`` (the frame as returned), ``P.md`` (a caption line, then a Markdown table) and
    ``P.tex`` (a booktabs ``table`` with caption and label ``tab:table1`` / ``tab:table3``). The
    Markdown and LaTeX tables put our numbers beside the paper's: Table 1 its published ratios,
    Table 3 ``trpo_score``, ``trpo_timesteps``, ``es_timesteps`` and ``ratio`` of
    `paper_table3_csv` (matched on env without ``-vN`` and level; ``n/a`` where absent).

    Parameters
    ----------
    run_dirs : iterable of Path or str
        ES and TRPO run directories (``progress.csv`` + ``run.json`` each).
    paper_table1_csv, paper_table3_csv : Path or str
        ``table1_mujoco_ratios.csv`` and ``table3_mujoco_detail.csv`` of ``paper/reference``.
    out_prefix_table1, out_prefix_table3 : Path or str
        Output paths without suffix, e.g. ``paper/tables/table1``.
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
    ValueError
        If no environment has both ES and TRPO runs (nothing would be written).
    """
    table1, table3 = mujoco_tables(load_runs(run_dirs), budget_timesteps=budget_timesteps,
                                   levels=levels, paper_table1_csv=paper_table1_csv)
    if table3.empty:
        raise ValueError("no environment has both ES and TRPO runs; Tables 1 and 3 not written")
    where = _budget_phrase(budget_timesteps)
    levels_text = "/".join(_level_name(float(p)) for p in levels)
    caption1 = (f"Table 1: ES timesteps / TRPO timesteps to reach {levels_text}% of TRPO's "
                f"learning progress {where}, on mean curves over seeds; '> r': ES never reached "
                f"the level, r = ES's last timestep / TRPO's (a lower bound). Paper: Salimans et "
                f"al. 2017 Table 1 (gym -v1 dynamics).")
    caption3 = (f"Table 3: score levels of TRPO's learning progress {where} (initial + p% of "
                f"final - initial) and the timesteps the mean curves over seeds of TRPO and ES "
                f"first reach them, beside Salimans et al. 2017 Table 3 (gym -v1 dynamics).")
    shown1 = _table1_display(table1)
    shown3 = _table3_display(table3, pd.read_csv(paper_table3_csv))
    write_table_files(out_prefix_table1, table1, markdown_table(caption1, shown1),
               latex_table(caption1, "tab:table1", shown1))
    write_table_files(out_prefix_table3, table3, markdown_table(caption3, shown3),
               latex_table(caption3, "tab:table3", shown3))
    return table1, table3

"""Per-environment summary of the ES MuJoCo runs beside TRPO's final score from the paper.

The TRPO column is the 100% row of Table 3 of Salimans et al. 2017 (arXiv:1703.03864): TRPO's score
after 5M timesteps on gym -v1 MuJoCo environments, whose dynamics differ from today's -v5 ones.
"""

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from esrepro.analysis.runs import load_runs
from esrepro.atomic import atomic_output

CAPTION = ("Deterministic evaluation of each seed's final ES policy, mean ± sd over seeds "
           "(initial: the same evaluation before the first update). TRPO: the paper's Table 3 "
           "score at 5M timesteps (gym -v1 dynamics, not directly comparable to -v5).")
"""First line of the Markdown table."""


def base_env_name(env: str) -> str:
    """Strip a gymnasium version suffix: ``"HalfCheetah-v5"`` -> ``"HalfCheetah"``."""
    return re.sub(r"-v\d+$", "", env)


def summarize_es_mujoco(runs_df: pd.DataFrame, trpo_reference_csv: Path | str) -> pd.DataFrame:
    """One row per environment: run size, initial and final evaluation, and the paper's TRPO score.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from :func:`esrepro.analysis.runs.load_runs`; only rows with algo ``"es"`` are
        used.
    trpo_reference_csv : Path or str
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
    ValueError
        If there are no ES rows, or a run has no iteration-0 row.
    """
    es = runs_df[runs_df["algo"] == "es"]
    if es.empty:
        raise ValueError("no ES runs (algo == 'es') to summarize")
    runs = es.sort_values(["env", "seed", "iteration"]).groupby(["env", "seed"], sort=True)
    first, final = runs.head(1), runs.tail(1)
    not_initial = first[first["iteration"] != 0]
    if not not_initial.empty:
        env, seed = not_initial.iloc[0][["env", "seed"]]
        raise ValueError(f"ES run env={env} seed={seed} has no iteration-0 row in progress.csv")
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
    reference = pd.read_csv(trpo_reference_csv)
    trpo_final = reference[reference["progress_pct"] == 100].set_index("env")["trpo_score"]
    table["trpo_final_score_paper"] = table["env"].map(base_env_name).map(trpo_final)
    return table


def summary_markdown(table: pd.DataFrame) -> str:
    """Render :func:`summarize_es_mujoco`'s table as a caption line plus a Markdown table.

    Returns and wall time are shown to 1 decimal, timesteps as a whole number, iterations as one
    when it is, a missing TRPO score as ``n/a``.
    """
    shown = pd.DataFrame({
        "env": table["env"],
        "seeds": table["seeds"],
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
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=["left"] + ["right"] * (shown.shape[1] - 1))
    return CAPTION + "\n\n" + markdown + "\n"


def _number(value: float) -> str:
    """A count-like mean: ``"12"`` when integral, else one decimal (``"12.5"``)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def write_summary(run_dirs: Iterable[Path | str], reference_csv: Path | str,
                  out_csv: Path | str, out_md: Path | str) -> pd.DataFrame:
    """Load the runs, summarize them, and write the table as CSV and Markdown, each atomically.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories (``progress.csv`` + ``run.json`` each).
    reference_csv : Path or str
        The paper's ``table3_mujoco_detail.csv``.
    out_csv, out_md : Path or str
        Outputs; parent directories are created.

    Returns
    -------
    DataFrame
        The table written (see :func:`summarize_es_mujoco`).
    """
    table = summarize_es_mujoco(load_runs(run_dirs), reference_csv)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_output(out_md) as tmp:
        tmp.write_text(summary_markdown(table), encoding="utf-8")
    return table

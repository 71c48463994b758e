"""The claims report: one row per claim of Salimans et al. 2017 (arXiv:1703.03864; docs/paper.md,
"Claims the suite checks"), with the paper's number, this grid's number, this grid's budget as a
fraction of the paper's, and a verdict by the rules of docs/paper.md ("Verdict rules").

It reads what the other aggregation commands wrote (Table 1 and Table 3, Table 2, the scaling
table) and the runs themselves through the checked loader (:mod:`esrepro.analysis.runs`): the
budgets and TRPO presets from ``run.json``, the bytes each ES run sent per iteration from its
``run.json`` ``communication_bytes``, and Figure 2's curves from the Atari runs' ``progress.csv``.
A claim whose table this grid does not build, whose runs are far below the paper's budget, or
whose runs never learned is "not testable here", with the reason and the budget that would test it.

Before the claims, one "learning" line per ES env and Atari game of the grid: not a claim of the
paper but the sanity check a reader needs first, whether ES's evaluation rose above its start
(:func:`learning_line`, rule in docs/paper.md, "Verdict rules").
"""

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from esrepro.analysis import atari_games, mujoco_tasks
from esrepro.analysis.render import check_outputs, fixed_text, write_table
from esrepro.analysis.runs import RunSelectionError, load_runs, read_reference, read_run_json
from esrepro.envs import ATARI, kind_of

REPRODUCED, SAME_DIRECTION, NOT_REPRODUCED, NOT_TESTABLE = (
    "reproduced", "same direction", "not reproduced", "not testable here")
"""The verdicts, strongest first; a not-testable verdict is followed by its reason in parentheses."""

FACTOR = 2.0
"""A number within this factor of the paper's reproduces it (docs/paper.md, Verdict rules)."""

MIN_BUDGET_FRACTION = 0.1
"""Runs below this fraction of the paper's budget are far below it: the claim is not testable."""

PLATEAU_FRACTION = 0.75
"""TRPO runs that reached their final level within this fraction of their budget ended on a plateau:
their 100% level means what the paper's 5M-timestep one does, whatever the budget (claim 1)."""

PAPER_TRPO_TIMESTEPS = 5_000_000
"""TRPO's budget per MuJoCo run (§4.1, Table 1)."""

PAPER_ATARI_FRAMES = 1_000_000_000
"""ES's budget per Atari game (§4.2, Table 2)."""

PAPER_ATARI_BETTER, PAPER_ATARI_GAMES = 23, 51
"""ES FF 1 hour beat A3C FF 1 day on 23 of the 51 games (§4.2)."""

PAPER_FRAMESKIP_UPDATES = 100
"""Pong converges in about 100 weight updates at every frame-skip (§4.4, Figure 2)."""

FLOAT32_BYTES = 4
"""Bytes of one parameter sent as float32 (what broadcasting the parameters costs per worker)."""

LEARNED, DID_NOT_LEARN, TOO_FEW = "learned", "did not learn", "too few iterations to tell"
"""The verdicts of a learning line (:func:`learning_line`)."""

LEARNING_WINDOW = 3
"""Evaluations at each end of every run that the learning check compares: the first ones (the
initial policy's and the next) against the last ones, per seed."""

LEARNING_STANDARD_ERRORS = 2.0
"""The learning check's rise must exceed this many standard errors of the difference of the means."""

LEARNING_META_COLUMNS = {"frame_skip": "config.frame_skip", "eval_episodes": "config.eval_episodes"}
"""``run.json`` values the learning check loads beside each ES run's ``progress.csv``."""

CLAIM_COLUMNS = ("claim", "paper", "ours", "budget_fraction", "budget", "verdict")
"""Columns of :func:`claims_table`, in order."""


def not_testable(reason: str) -> str:
    """The verdict ``"not testable here (<reason>)"``."""
    return f"{NOT_TESTABLE} ({reason})"


def compare(ours: float, paper: float, pivot: float) -> str:
    """Verdict of one number against the paper's: within :data:`FACTOR` of it (both positive, or
    equal) -> reproduced; on the same side of ``pivot`` (1 for a ratio of timesteps, 0.5 for a share
    of games) -> same direction; otherwise not reproduced."""
    if ours == paper or (ours > 0 and paper > 0 and max(ours / paper, paper / ours) <= FACTOR):
        return REPRODUCED
    if (ours - pivot) * (paper - pivot) > 0:
        return SAME_DIRECTION
    return NOT_REPRODUCED


def weakest(verdicts: Sequence[str]) -> str:
    """The weakest of testable verdicts (reproduced > same direction > not reproduced); if none is
    testable, the not-testable verdicts joined."""
    order = [REPRODUCED, SAME_DIRECTION, NOT_REPRODUCED]
    testable = [v for v in verdicts if v in order]
    if testable:
        return max(testable, key=order.index)
    reasons = list(dict.fromkeys(v.removeprefix(f"{NOT_TESTABLE} (").removesuffix(")") for v in verdicts))
    return not_testable("; ".join(reasons) if reasons else "no runs")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def _lower_bound(text: str) -> float:
    """``r`` of a Table 1 ratio text ``"> r"`` (ES never reached the level); NaN for any other text."""
    match = re.fullmatch(r">\s*([0-9.eE+-]+)", str(text).strip())
    return float(match.group(1)) if match else math.nan


# ---------------------------------------------------------------- learning lines

def _window(rows: pd.DataFrame) -> tuple[float, float]:
    """Mean of the evaluations in ``rows`` and its squared standard error, every episode counted
    once: each row's episode variance is its ``eval_return_std`` (population sd over
    ``eval_episodes`` episodes, as ES records it) made unbiased, divided by its episode count."""
    episodes = rows["eval_episodes"]
    variance = rows["eval_return_std"] ** 2 * episodes / (episodes - 1)
    return float(rows["eval_return_mean"].mean()), float((variance / episodes).sum()) / len(rows) ** 2


def learning_line(runs: pd.DataFrame, name: str) -> dict:
    """The learning line of one ES env or game: did the evaluation rise above the initial policy's?

    Rule (docs/paper.md, "Verdict rules"): per run, the first :data:`LEARNING_WINDOW` evaluations
    (iteration 0 is the initial policy) and the last :data:`LEARNING_WINDOW`; the mean of the last
    ones over runs minus that of the first ones is the rise. Its standard error pools every
    evaluation episode of the two windows over seeds (each row's ``eval_return_std`` over its
    ``eval_episodes``). Learned if the rise exceeds :data:`LEARNING_STANDARD_ERRORS` standard
    errors (any rise when every episode scored the same), else did not learn; too few iterations to
    tell when a run has fewer than 2 x :data:`LEARNING_WINDOW` evaluations of at least 2 episodes.
    Not a claim of the paper: a sanity check to read before the claims.

    Parameters
    ----------
    runs : DataFrame
        The progress rows of every run of the env or game (one run per ``seed``), as
        ``load_runs(dirs, LEARNING_META_COLUMNS)``: ``eval_return_mean``, ``eval_return_std``,
        ``eval_episodes`` and ``iteration``; rows without an evaluation are skipped.
    name : str
        The env id or game, for the ``claim`` text.

    Returns
    -------
    dict
        A row of :func:`claims_table`: ``claim``, ``paper`` ("n/a"), ``ours`` (the two means, the
        rise and its threshold, in score points), ``budget_fraction`` (NaN), ``budget`` (the fewest
        iterations of any run) and ``verdict`` (:data:`LEARNED`, :data:`DID_NOT_LEARN` or
        :data:`TOO_FEW`).
    """
    evaluated = runs[runs["eval_episodes"] >= 2].dropna(subset=["eval_return_mean", "eval_return_std"])
    by_run = evaluated.sort_values("iteration").groupby("seed")
    iterations = int(runs.groupby("seed")["iteration"].max().min())
    line = {"claim": f"Learning (a sanity check, not a claim of the paper): ES on {name}", "paper": "n/a",
            "budget_fraction": math.nan, "budget": f"{iterations} iterations"}
    counts = by_run.size()
    if counts.size < runs["seed"].nunique() or counts.min() < 2 * LEARNING_WINDOW:
        return line | {"ours": f"a run has {counts.min() if counts.size else 0} evaluations of 2 or more episodes; "
                               f"{2 * LEARNING_WINDOW} would tell", "verdict": TOO_FEW}
    (first, first_var), (last, last_var) = (_window(by_run.head(LEARNING_WINDOW)),
                                            _window(by_run.tail(LEARNING_WINDOW)))
    threshold = LEARNING_STANDARD_ERRORS * math.sqrt(first_var + last_var)
    rise = last - first
    episodes = by_run.head(LEARNING_WINDOW)["eval_episodes"].sum()
    line["ours"] = (f"evaluation {first:.3g} (first {LEARNING_WINDOW} per run) to {last:.3g} (last "
                    f"{LEARNING_WINDOW}): rise {rise:+.3g}, {LEARNING_STANDARD_ERRORS:g} standard errors "
                    f"{threshold:.3g} ({counts.size} runs, {episodes:.0f} episodes per window)")
    return line | {"verdict": LEARNED if rise > threshold else DID_NOT_LEARN}


def learning_lines(es_runs: pd.DataFrame | None) -> list[dict]:
    """One :func:`learning_line` per ES env (MuJoCo) and per Atari game (its Table 2 runs, frame-skip
    :data:`esrepro.analysis.atari_games.TABLE_FRAME_SKIP`), sorted by name; none without ES runs.

    Parameters
    ----------
    es_runs : DataFrame or None
        ``load_runs(dirs, LEARNING_META_COLUMNS)`` of the grid's ES runs that train to their budget
        (:func:`write_claims` leaves out the scaling runs, which stop at a target score).
    """
    if es_runs is None:
        return []
    atari = es_runs["env"].map(kind_of) == ATARI
    table2 = es_runs[atari & (pd.to_numeric(es_runs["frame_skip"]) == atari_games.TABLE_FRAME_SKIP)]
    names = pd.concat([es_runs.loc[~atari, "env"], table2["env"].map(atari_games.game_name)])
    runs = pd.concat([es_runs[~atari], table2])
    return [learning_line(group, str(name)) for name, group in runs.groupby(names, sort=True)]


# ---------------------------------------------------------------- claim 1: Table 1

def table1_claims(table1: pd.DataFrame | None, table3: pd.DataFrame | None, runs: list[dict]) -> list[dict]:
    """Claim 1 (§4.1, Table 1), one row per TRPO preset of the tables: per env and level, our ratio
    ES / TRPO timesteps against the paper's.

    A level's verdict is :func:`compare` (pivot 1). A level ES never reached (``> r``, a lower bound)
    is same direction (paper above 1) or not reproduced (paper below 1) when ``r`` already exceeds
    :data:`FACTOR` x the paper's ratio, else not testable. An env whose TRPO runs (of that preset)
    are below :data:`MIN_BUDGET_FRACTION` of 5M timesteps, unless they reached their final (100%)
    level within :data:`PLATEAU_FRACTION` of their budget (a plateau: InvertedPendulum's 1000), or
    made no progress, is not testable. A row's verdict is the weakest over envs and levels
    (:func:`weakest`). The paper's claim is about
    its own TRPO (preset ``paper2017``, reconstructed); a ``zoo`` row asks the same of a modern one.

    Parameters
    ----------
    table1, table3 : DataFrame or None
        ``table1.csv`` (for ``paper_<p>``) and ``table3.csv`` (ours) of ``write_mujoco_tables``,
        with their ``trpo_preset`` column; None when the grid has no env with both ES and TRPO runs
        (then one not-testable row).
    runs : list of dict
        Every run.json of the grid (TRPO runs give the budgets of each preset).
    """
    claim = "Table 1 (§4.1): ES timesteps / TRPO timesteps to reach TRPO's learning progress"
    if table3 is None or table3.empty:
        return [{"claim": claim, "paper": "6 envs, ratios 0.15 to 8.02", "ours": "no env with ES and TRPO runs",
                 "budget_fraction": math.nan, "budget": "n/a",
                 "verdict": not_testable("the grid runs no env with both ES and TRPO; an es and a trpo section on "
                                         "the same envs, TRPO at 5M timesteps, would test it")}]
    column = mujoco_tasks.PRESET_COLUMN
    return [_table1_claim(f"{claim} (TRPO preset {preset})", table1[table1[column] == preset], levels, [
        r for r in runs if r["algo"] == mujoco_tasks.TRPO_ALGO
        and r["config"].get("preset", mujoco_tasks.PRESET_BEFORE_PRESETS) == preset])
        for preset, levels in table3.groupby(column, sort=True)]


def _table1_claim(claim: str, table1: pd.DataFrame, table3: pd.DataFrame, trpo: list[dict]) -> dict:
    """The claim-1 row of one TRPO preset: its rows of Table 1 and Table 3 and its TRPO run.json."""
    paper, ours, verdicts, fractions = [], [], [], []
    for env, levels in table3.groupby("env", sort=True):
        steps = min(r["timesteps"] for r in trpo if r["env"] == env)
        fraction = steps / PAPER_TRPO_TIMESTEPS
        fractions.append(fraction)
        published = table1.set_index("env").loc[env]
        paper.append(f"{env}: " + " ".join(fixed_text(published[f"paper_{p}"]) for p in levels["progress_pct"]))
        # A column of ratios only reads back as floats: shown as Table 1 writes them, to 2 decimals.
        ours.append(f"{env}: " + " ".join(f"{t:.2f}" if isinstance(t, float) else str(t) for t in levels["ratio_text"]))
        plateau = levels.loc[levels["progress_pct"] == 100, "trpo_timesteps"].max() <= PLATEAU_FRACTION * steps
        if fraction < MIN_BUDGET_FRACTION and not plateau:
            verdicts.append(not_testable(f"{env}: TRPO ran {steps:,} timesteps, {_percent(fraction)} of the "
                                         f"paper's 5M, and was still learning; "
                                         f"{MIN_BUDGET_FRACTION * PAPER_TRPO_TIMESTEPS:,.0f} or more would test it"))
            continue
        for level in levels.itertuples():
            p = float(published[f"paper_{level.progress_pct}"])
            if math.isnan(p):
                verdicts.append(not_testable(f"the paper has no {level.progress_pct}% ratio for {env}"))
            elif level.ratio_text == mujoco_tasks.NO_PROGRESS_TEXT:
                verdicts.append(not_testable(f"{env}: TRPO made no progress within {steps:,} timesteps"))
            elif not math.isnan(level.ratio):
                verdicts.append(compare(level.ratio, p, pivot=1.0))
            elif _lower_bound(level.ratio_text) > FACTOR * p:
                verdicts.append(SAME_DIRECTION if p > 1 else NOT_REPRODUCED)
            else:
                needed = FACTOR * p * level.trpo_timesteps
                verdicts.append(not_testable(f"{env}: ES never reached TRPO's {level.progress_pct}% level; ES "
                                             f"runs of {needed:,.0f} timesteps would test it"))
    return {"claim": claim, "paper": "; ".join(paper), "ours": "; ".join(ours), "budget_fraction": min(fractions),
            "budget": f"TRPO {_percent(min(fractions))} of 5M timesteps", "verdict": weakest(verdicts)}


# ---------------------------------------------------------------- claim 2: Table 2

def table2_claim(atari: pd.DataFrame | None, atari_runs: pd.DataFrame | None) -> dict:
    """Claim 2 (§4.2, Table 2): the share of games where ES beats the published A3C FF 1 day, ours
    against the published ES's on the same games, :func:`compare` with pivot 0.5 (mostly better or
    mostly worse). Not testable below :data:`MIN_BUDGET_FRACTION` of 1 billion frames per game, or
    when no ES run (frame-skip 4) ended above its initial score.

    Parameters
    ----------
    atari : DataFrame or None
        ``atari.csv`` of ``write_atari_table``; None when the grid has no Atari section.
    atari_runs : DataFrame or None
        ``load_runs`` of the grid's Atari runs with :data:`esrepro.analysis.atari_games.META_COLUMNS`.
    """
    claim = {"claim": "Table 2 (§4.2): ES (1 hour, 720 CPUs) vs A3C (1 day): share of games ES is better",
             "paper": f"{PAPER_ATARI_BETTER} of {PAPER_ATARI_GAMES} games"}
    games = None if atari is None else atari[atari["es_seeds"].fillna(0) > 0]
    if games is None or games.empty:
        return claim | {"ours": "no ES Atari runs", "budget_fraction": math.nan, "budget": "n/a",
                        "verdict": not_testable("the grid runs no Atari game with ES; an atari section at 1 "
                                                "billion frames per game would test it")}
    ours_better = int((games["es_vs_a3c"] == "better").sum())
    paper_better = int((games["es_paper_vs_a3c"] == "better").sum())
    n = len(games)
    claim["paper"] += f" ({paper_better} of these {n})"
    fraction = float(games["es_frames"].mean()) / PAPER_ATARI_FRAMES
    claim |= {"ours": f"{ours_better} of {n} games", "budget_fraction": fraction,
              "budget": f"{_percent(fraction)} of 1e9 frames per game"}
    if fraction < MIN_BUDGET_FRACTION:
        return claim | {"verdict": not_testable(f"ES ran {_percent(fraction)} of the paper's 1 billion frames per "
                                                f"game; {MIN_BUDGET_FRACTION * PAPER_ATARI_FRAMES:,.0f} frames or "
                                                "more would test it")}
    table2_runs = atari_runs[pd.to_numeric(atari_runs["frame_skip"]) == atari_games.TABLE_FRAME_SKIP]
    if not _learned(table2_runs):
        return claim | {"verdict": not_testable("no ES run ended above its initial score")}
    return claim | {"verdict": compare(ours_better / n, paper_better / n, pivot=0.5)}


def _learned(runs: pd.DataFrame) -> bool:
    """Whether any run's last evaluation is above its first."""
    evaluated = runs.dropna(subset=["eval_return_mean"]).sort_values("iteration")
    by_run = evaluated.groupby(["env", "seed", "frame_skip"])["eval_return_mean"]
    return bool((by_run.last() > by_run.first()).any())


# ---------------------------------------------------------------- claim 3: Figure 2

def frameskip_claim(atari_runs: pd.DataFrame | None, game: str | None) -> dict:
    """Claim 3 (§4.4, Figure 2): ES learns about equally fast at every frame-skip.

    Per frame-skip, the improvement is the mean over seeds of the last evaluation minus the
    initial one, after the fewest updates any frame-skip ran. Reproduced if every improvement is
    positive and within :data:`FACTOR` of the largest; same direction if every one is positive;
    else not reproduced. Not testable with fewer than :data:`MIN_BUDGET_FRACTION` x 100 updates,
    or when no frame-skip improved.
    """
    claim = {"claim": "Figure 2 (§4.4): ES learns Pong about equally fast at frame-skip 1, 2, 3, 4",
             "paper": f"all four converge in about {PAPER_FRAMESKIP_UPDATES} updates"}
    runs = None if atari_runs is None or game is None else atari_runs[
        atari_runs["env"].map(atari_games.game_name) == game]
    if runs is None or runs.empty or runs["frame_skip"].nunique() < 2:
        return claim | {"ours": "no frame-skip grid", "budget_fraction": math.nan, "budget": "n/a",
                        "verdict": not_testable("the grid runs no game at two or more frame-skips; "
                                                "atari.frameskip with 100 updates would test it")}
    runs = runs.dropna(subset=["eval_return_mean"])
    updates = int(runs.groupby(["frame_skip", "seed"])["iteration"].max().min())
    runs = runs[runs["iteration"] <= updates].sort_values("iteration")
    per_seed = runs.groupby(["frame_skip", "seed"])["eval_return_mean"]
    gain = (per_seed.last() - per_seed.first()).groupby("frame_skip").mean()
    fraction = updates / PAPER_FRAMESKIP_UPDATES
    claim |= {"ours": f"{game} after {updates} updates, score change "
                      + ", ".join(f"frame-skip {k:g}: {v:+.1f}" for k, v in gain.items()),
              "budget_fraction": fraction, "budget": f"{updates} of ~{PAPER_FRAMESKIP_UPDATES} updates"}
    if fraction < MIN_BUDGET_FRACTION:
        return claim | {"verdict": not_testable(f"{updates} updates per frame-skip; "
                                                f"{MIN_BUDGET_FRACTION * PAPER_FRAMESKIP_UPDATES:.0f} or more "
                                                "would test it")}
    if not (gain > 0).any():
        return claim | {"verdict": not_testable(f"no frame-skip improved in {updates} updates")}
    if (gain > 0).all():
        verdict = REPRODUCED if gain.min() * FACTOR >= gain.max() else SAME_DIRECTION
    else:
        verdict = NOT_REPRODUCED
    return claim | {"verdict": verdict}


# ---------------------------------------------------------------- claim 4: Figure 1

def scaling_claim(scaling: pd.DataFrame | None) -> dict:
    """Claim 4 (§4.3, Figure 1): parallel efficiency at the most cores with a median time to target,
    ours against the paper's (657 min on 18 cores, 10 min on 1440: 0.82): reproduced within
    :data:`FACTOR` of it, else same direction if more cores were faster (speedup > 1), else not
    reproduced. Not testable below :data:`MIN_BUDGET_FRACTION` of the paper's
    1440 cores, or with fewer than two core counts that reached the target.

    Parameters
    ----------
    scaling : DataFrame or None
        ``scaling.csv`` of ``write_scaling``; None when the grid has no scaling section.
    """
    claim = {"claim": "Figure 1 (§4.3): ES scales linearly with CPU cores (time to a Humanoid score)"}
    if scaling is None:
        return claim | {"paper": "efficiency 0.82 (18 to 1440 cores)", "ours": "no scaling runs",
                        "budget_fraction": math.nan, "budget": "n/a",
                        "verdict": not_testable("the grid has no scaling section; 18 to 1440 cores to a score "
                                                "of 6000 would test it")}
    paper = scaling[scaling["source"] == "paper"].sort_values("cpu_cores")
    ours = scaling[(scaling["source"] == "ours")].sort_values("cpu_cores")
    timed = ours.dropna(subset=["median_minutes"])
    top = paper.iloc[-1]
    claim["paper"] = (f"efficiency {top['efficiency']:.2f} ({paper['cpu_cores'].iloc[0]:.0f} to "
                      f"{top['cpu_cores']:.0f} cores, score {top['target_return']:g})")
    fraction = float(ours["cpu_cores"].max()) / float(top["cpu_cores"])
    claim |= {"budget_fraction": fraction,
              "budget": f"{ours['cpu_cores'].max():.0f} of {top['cpu_cores']:.0f} cores, score "
                        f"{ours['target_return'].iloc[0]:g} of {top['target_return']:g}"}
    if len(timed) < 2:
        return claim | {"ours": f"{len(timed)} core count(s) reached the target",
                        "verdict": not_testable("fewer than two core counts reached the target score")}
    last = timed.iloc[-1]
    claim["ours"] = (f"efficiency {last['efficiency']:.2f}, speedup {last['speedup']:.2f} "
                     f"({timed['cpu_cores'].iloc[0]:.0f} to {last['cpu_cores']:.0f} cores)")
    if fraction < MIN_BUDGET_FRACTION:
        return claim | {"verdict": not_testable(f"{ours['cpu_cores'].max():.0f} cores at most; "
                                                f"{MIN_BUDGET_FRACTION * top['cpu_cores']:.0f} or more would "
                                                "test it")}
    ours_e, paper_e = float(last["efficiency"]), float(top["efficiency"])
    if max(ours_e / paper_e, paper_e / ours_e) <= FACTOR:
        return claim | {"verdict": REPRODUCED}
    return claim | {"verdict": SAME_DIRECTION if last["speedup"] > 1 else NOT_REPRODUCED}


# ---------------------------------------------------------------- claim 5: communication

def communication_claim(runs: list[dict]) -> dict:
    """Claim 5 (§2.1, Algorithm 2): with a shared noise table, workers exchange scalars only.

    For every ES run in ``scalar`` mode, the bytes it sent per iteration (to and from the workers,
    ``run.json`` ``communication_bytes``) against what broadcasting the parameters would cost
    (``num_params`` x 4 bytes x ``workers``); the largest of these ratios is the claim's number.
    Reproduced at most 1 / :data:`FACTOR` (a factor 2 below broadcasting), same direction below 1,
    else not reproduced. Not testable without a scalar-mode run.
    Independent of the budget.
    """
    claim = {"claim": "Algorithm 2 (§2.1): workers exchange scalars only, never the parameters",
             "paper": "scalars (returns, noise indices) per iteration", "budget_fraction": math.nan,
             "budget": "n/a (does not depend on the budget)"}
    ratios = []
    for r in runs:
        traffic = r.get("communication_bytes")
        if r["algo"] == "es" and isinstance(traffic, dict) and traffic.get("mode") == "scalar":
            sent = traffic["to_workers_per_iteration"] + traffic["from_workers_per_iteration"]
            broadcast = r["num_params"] * FLOAT32_BYTES * r["workers"]
            ratios.append((sent / broadcast, sent, broadcast, r))
    if not ratios:
        return claim | {"ours": "no scalar-mode ES run",
                        "verdict": not_testable("no ES run used communication: scalar; any such run would "
                                                "test it")}
    ratio, sent, broadcast, run = max(ratios, key=lambda item: item[0])
    claim["ours"] = (f"{sent:,} bytes per iteration vs {broadcast:,} to broadcast the parameters "
                     f"({ratio:.2g}x; largest of {len(ratios)} scalar-mode runs: {run['env']}, "
                     f"{run['num_params']:,} parameters, {run['workers']} workers)")
    verdict = REPRODUCED if ratio <= 1 / FACTOR else SAME_DIRECTION if ratio < 1 else NOT_REPRODUCED
    return claim | {"verdict": verdict}


# ---------------------------------------------------------------- the report

def claims_table(runs: list[dict], atari_runs: pd.DataFrame | None, table1: pd.DataFrame | None = None,
                 table3: pd.DataFrame | None = None, atari: pd.DataFrame | None = None,
                 scaling: pd.DataFrame | None = None, frameskip_game: str | None = None,
                 es_runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The learning lines of ``es_runs`` (:func:`learning_lines`), then the five claims, one row each
    (claim 1: one row per TRPO preset of the tables).

    Returns
    -------
    DataFrame, shape (n_learning + 4 + n_presets, len(CLAIM_COLUMNS))
        ``claim``, ``paper`` (the paper's number, text), ``ours`` (this grid's, text),
        ``budget_fraction`` (this grid's budget / the paper's; NaN where it does not apply),
        ``budget`` (text) and ``verdict``.
    """
    rows = [*learning_lines(es_runs), *table1_claims(table1, table3, runs), table2_claim(atari, atari_runs),
            frameskip_claim(atari_runs, frameskip_game), scaling_claim(scaling), communication_claim(runs)]
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def _optional(path, read):
    return None if path is None else read(path)


def write_claims(run_dirs: Iterable[Path | str], out_paths: Iterable[Path | str], table1_csv=None,
                 table3_csv=None, atari_csv=None, scaling_csv=None) -> pd.DataFrame:
    """Read the grid's runs and tables, build :func:`claims_table` and write it.

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Every run directory of the grid (``run.json`` each; the ES ones also ``progress.csv``, but
        for runs with a ``target_return``, the scaling runs, whose learning lines are left out).
    out_paths : iterable of Path or str
        Table files, format by suffix (:func:`esrepro.analysis.render.write_table`; ``.md``: a
        caption and the table), e.g. ``paper/claims.md``.
    table1_csv, table3_csv, atari_csv, scaling_csv : Path or str, optional
        The CSVs of ``write_mujoco_tables``, ``write_atari_table`` and ``write_scaling``; a claim
        whose table is not given is not testable here.

    Raises
    ------
    InputError
        For a bad output path, only one of ``table1_csv`` and ``table3_csv``, or a missing or damaged
        run file or table, before anything is written.
    """
    out_paths = list(out_paths)
    check_outputs(tables=out_paths)
    if (table1_csv is None) != (table3_csv is None):
        raise RunSelectionError("claim 1 needs both Table 1 and Table 3 (table1.csv and table3.csv), got "
                                f"{table1_csv or table3_csv} alone")
    run_dirs = [Path(d) for d in run_dirs]
    runs = [read_run_json(d / "run.json") for d in run_dirs]
    es_dirs = [d for d, r in zip(run_dirs, runs) if r["algo"] == "es" and r["config"].get("target_return") is None]
    atari_dirs = [d for d, r in zip(run_dirs, runs) if r["algo"] == "es" and kind_of(r["env"]) is ATARI]
    atari_runs = (load_runs(atari_dirs, atari_games.META_COLUMNS, atari_games.REQUIRED) if atari_dirs else None)
    skips = None if atari_runs is None else atari_runs.groupby(atari_runs["env"].map(atari_games.game_name))[
        "frame_skip"].nunique()
    frameskip_game = None if skips is None or skips.max() < 2 else str(skips.idxmax())
    levels = [f"paper_{p}" for p in mujoco_tasks.DEFAULT_LEVELS]
    table = claims_table(
        runs, atari_runs,
        table1=_optional(table1_csv, lambda p: read_reference(p, ["env", mujoco_tasks.PRESET_COLUMN], levels)),
        table3=_optional(table3_csv, lambda p: read_reference(p, ["env", mujoco_tasks.PRESET_COLUMN, "ratio_text"], [
            "progress_pct", "trpo_timesteps", "ratio"])),
        atari=_optional(atari_csv, lambda p: read_reference(p, ["game", "es_vs_a3c", "es_paper_vs_a3c"], [
            "es_seeds", "es_frames"])),
        scaling=_optional(scaling_csv, lambda p: read_reference(p, ["source"], [
            "cpu_cores", "target_return", "median_minutes", "speedup", "efficiency"])),
        frameskip_game=frameskip_game,
        es_runs=load_runs(es_dirs, LEARNING_META_COLUMNS) if es_dirs else None)
    shown = table.drop(columns="budget_fraction").rename(columns={
        "paper": "the paper", "ours": "this grid", "budget": "budget vs the paper's"})
    caption = ("Claims of Salimans et al. 2017 against this grid's runs, built from them (never by hand), after "
               "one learning line per ES env and Atari game (a sanity check, not a claim): "
               f"{LEARNED} if the mean of the last {LEARNING_WINDOW} evaluations per run rose above that of "
               f"the first {LEARNING_WINDOW} by more than {LEARNING_STANDARD_ERRORS:g} standard errors, "
               f"else {DID_NOT_LEARN}, or {TOO_FEW}. "
               f"Verdicts (docs/paper.md, Verdict rules): within a factor {FACTOR:g} of the paper's number = "
               f"{REPRODUCED}; on the same side = {SAME_DIRECTION}; else {NOT_REPRODUCED}; runs below "
               f"{MIN_BUDGET_FRACTION:g} of the paper's budget, or that never learned = {NOT_TESTABLE}.")
    write_table(out_paths, table, shown.astype(str), caption, "tab:claims")
    return table


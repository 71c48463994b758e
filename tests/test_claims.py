"""The claims report (esrepro/analysis/claims.py): the verdict rules, each claim on small synthetic
runs written with the project's writers and tables built by the real aggregation commands, the
command line, and the communication claim read from a real scalar-mode ES run."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from esrepro.analysis.claims import (
    DID_NOT_LEARN,
    LEARNED,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    SAME_DIRECTION,
    TOO_FEW,
    communication_claim,
    compare,
    frameskip_claim,
    scaling_claim,
    table2_claim,
    weakest,
    write_claims,
)
from esrepro.analysis.mujoco_tasks import write_mujoco_tables
from esrepro.analysis.runs import RunSelectionError, read_run_json
from esrepro.atomic import write_json
from esrepro.progress import write_progress

from conftest import REPO, TINY, run_cli

REFERENCE = REPO / "paper" / "reference"


def write_run(root, algo, env, seed, timesteps, evals, eval_stds=None, **meta):
    """A run directory as the trainers write it: progress.csv (shared columns) and run.json."""
    out = root / algo / meta.get("config", {}).get("preset", "") / env / f"seed{seed}"
    rows = [{"iteration": i, "timesteps": t, "episodes": 10 * i, "wall_time_s": float(i), "eval_return_mean": e,
             "eval_return_std": math.nan if eval_stds is None else eval_stds[i]}
            for i, (t, e) in enumerate(zip(timesteps, evals))]
    write_progress(out / "progress.csv", rows)
    config = meta.pop("config", {})
    write_json(out / "run.json", {"algo": algo, "env": env, "seed": seed, "wall_time_s": float(len(rows)),
                                  "config": config, "timesteps": timesteps[-1], **meta})
    return out


@pytest.mark.parametrize("ours, paper, pivot, verdict", [
    (0.30, 0.28, 1, REPRODUCED), (0.10, 0.28, 1, SAME_DIRECTION), (0.56, 0.28, 1, REPRODUCED),
    (0.57, 0.28, 1, SAME_DIRECTION), (3.0, 0.28, 1, NOT_REPRODUCED), (20.0, 7.88, 1, SAME_DIRECTION),
    (1.5, 0.88, 1, REPRODUCED), (0.0, 0.0, 0.5, REPRODUCED), (0.9, 0.45, 0.5, REPRODUCED),
    (0.2, 0.45, 0.5, SAME_DIRECTION), (1.0, 0.45, 0.5, NOT_REPRODUCED), (0.0, 1.0, 0.5, NOT_REPRODUCED)])
def test_compare(ours, paper, pivot, verdict):
    assert compare(ours, paper, pivot) == verdict


def test_weakest():
    assert weakest([REPRODUCED, SAME_DIRECTION]) == SAME_DIRECTION
    assert weakest([REPRODUCED, f"{NOT_TESTABLE} (a)", NOT_REPRODUCED]) == NOT_REPRODUCED
    assert weakest([f"{NOT_TESTABLE} (a)", f"{NOT_TESTABLE} (b)", f"{NOT_TESTABLE} (a)"]) == f"{NOT_TESTABLE} (a; b)"


#: TRPO reaches 25/50/75/100% of its progress (0 -> 1000) at 1M, 2M, 3M, 4M timesteps.
TRPO_CURVE = ([0, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000], [0, 250, 500, 750, 1000, 1000])


def mujoco_grid(root, es_scale, trpo_scale=1.0, trpo_plateau=1):
    """ES and TRPO on InvertedPendulum-v5, 2 seeds each; ES reaches TRPO's levels at
    es_scale x (0.3, 1.0, 2.4, 3.6) M timesteps, i.e. ratios es_scale x (0.3, 0.5, 0.8, 0.9)
    (the paper's: 0.28, 0.52, 0.78, 0.88); TRPO's timesteps scaled by trpo_scale, and TRPO runs on at
    its final score for trpo_plateau x 1M (scaled) timesteps."""
    es_t = [0, *(es_scale * trpo_scale * t for t in (300_000, 1_000_000, 2_400_000, 3_600_000))]
    curve = (TRPO_CURVE[0] + [4_000_000 + 1_000_000 * k for k in range(2, trpo_plateau + 1)],
             TRPO_CURVE[1] + [1000] * (trpo_plateau - 1))
    trpo_t = [int(trpo_scale * t) for t in curve[0]]
    dirs = []
    for seed in (0, 1):
        dirs.append(write_run(root, "es", "InvertedPendulum-v5", seed, [int(t) for t in es_t],
                              [0, 250, 500, 750, 1000], num_params=4545, workers=2,
                              communication_bytes={"mode": "scalar", "to_workers_per_iteration": 900,
                                                   "from_workers_per_iteration": 1600}))
        dirs.append(write_run(root, "trpo", "InvertedPendulum-v5", seed, trpo_t, curve[1],
                              config={"preset": "paper2017"}))
    tables = root / "tables"
    write_mujoco_tables(dirs, REFERENCE / "table1_mujoco_ratios.csv", REFERENCE / "table3_mujoco_detail.csv",
                        [tables / "table1.csv"], [tables / "table3.csv"])
    return dirs, tables


def claims_of(tmp_path, dirs, tables, **extra):
    out = tmp_path / "paper" / "claims.csv"
    table = write_claims(dirs, [out, out.with_suffix(".md")], tables / "table1.csv", tables / "table3.csv", **extra)
    assert pd.read_csv(out)[["claim", "verdict"]].equals(table[["claim", "verdict"]])
    return table.set_index(table["claim"].str.split(" ").str[:2].str.join(" "))


@pytest.mark.parametrize("es_scale, verdict", [
    (1.0, REPRODUCED),       # 0.3 0.5 0.8 0.9 against the paper's 0.28 0.52 0.78 0.88
    (1.8, REPRODUCED),       # 0.54 .. 1.62: within a factor 2 at every level
    (0.4, SAME_DIRECTION),   # 0.12 .. 0.36: more than 2x faster, still below 1
    (2.5, NOT_REPRODUCED),   # 0.75 1.25 2.0 2.25: the 50% level is on the other side of 1
    (10.0, NOT_REPRODUCED)])
def test_table1_claim(tmp_path, es_scale, verdict):
    dirs, tables = mujoco_grid(tmp_path, es_scale)
    row = claims_of(tmp_path, dirs, tables).loc["Table 1"]
    assert row["verdict"] == verdict, row.to_dict()
    assert "TRPO preset paper2017" in row["claim"] and row["budget_fraction"] == 1.0
    assert row["ours"].startswith("InvertedPendulum-v5: ")
    assert row["paper"] == "InvertedPendulum-v5: 0.28 0.52 0.78 0.88"


def test_table1_claim_per_trpo_preset(tmp_path):
    """The same ES runs against two TRPO presets: one claim-1 row each, with its own budget and verdict."""
    dirs, _ = mujoco_grid(tmp_path, 1.0)
    for seed in (0, 1):  # the zoo's TRPO learns 10x faster and runs 500k timesteps: ratios 3 to 9
        dirs.append(write_run(tmp_path, "trpo", "InvertedPendulum-v5", seed, [t // 10 for t in TRPO_CURVE[0]],
                              TRPO_CURVE[1], config={"preset": "zoo"}))
    tables = tmp_path / "both"
    write_mujoco_tables(dirs, REFERENCE / "table1_mujoco_ratios.csv", REFERENCE / "table3_mujoco_detail.csv",
                        [tables / "table1.csv"], [tables / "table3.csv"])
    table = claims_of(tmp_path, dirs, tables)
    assert len(table) == 7  # a learning line, claim 1 per preset, claims 2 to 5
    rows = table.loc["Table 1"].set_index(table.loc["Table 1", "claim"].str.extract(r"preset (\w+)")[0])
    assert rows.loc["paper2017", "verdict"] == REPRODUCED and rows.loc["paper2017", "budget_fraction"] == 1.0
    assert rows.loc["zoo", "verdict"] == NOT_REPRODUCED and rows.loc["zoo", "budget_fraction"] == 0.1
    assert rows.loc["zoo", "ours"] == "InvertedPendulum-v5: 3.00 5.00 8.00 9.00"


def test_table1_far_below_the_paper_budget_is_not_testable(tmp_path):
    dirs, tables = mujoco_grid(tmp_path, 1.0, trpo_scale=0.02)  # TRPO to 100k timesteps: 2% of 5M
    row = claims_of(tmp_path, dirs, tables).loc["Table 1"]
    assert row["verdict"] == (f"{NOT_TESTABLE} (InvertedPendulum-v5: TRPO ran 100,000 timesteps, 2% of the "
                              "paper's 5M, and was still learning; 500,000 or more would test it)")
    assert row["budget_fraction"] == pytest.approx(0.02)


@pytest.mark.parametrize("plateau, verdict", [(1, NOT_TESTABLE), (2, REPRODUCED)])
def test_table1_below_the_paper_budget_on_a_plateau_is_testable(tmp_path, plateau, verdict):
    """TRPO at 2% of the paper's budget, at its final score from 80k timesteps on: of 100k, still
    learning; of 120k, reached within 0.75 of its budget, a plateau: its 100% level means the paper's."""
    dirs, tables = mujoco_grid(tmp_path, 1.0, trpo_scale=0.02, trpo_plateau=plateau)
    row = claims_of(tmp_path, dirs, tables).loc["Table 1"]
    assert row["verdict"].startswith(verdict), row.to_dict()
    assert row["budget_fraction"] == pytest.approx(0.02 * (4 + plateau) / 5)


def test_without_tables_every_claim_says_what_would_test_it(tmp_path):
    dirs, _ = mujoco_grid(tmp_path, 1.0)
    out = tmp_path / "claims.md"
    table = write_claims(dirs, [out])
    assert len(table) == 6 and table["verdict"].iloc[0] == TOO_FEW  # ES's learning line: no evaluation sd
    assert table["verdict"].iloc[1:5].str.startswith(NOT_TESTABLE + " (").all()
    assert "would test it" in table["verdict"].iloc[1]
    text = out.read_text()
    assert text.startswith("Claims of Salimans et al. 2017")
    assert sum(line.startswith("|") for line in text.splitlines()) == 2 + 6  # header, rule, learning, 5 claims


def test_communication_claim():
    run = {"algo": "es", "env": "ALE/Pong-v5", "num_params": 1_700_000, "workers": 8,
           "communication_bytes": {"mode": "scalar", "to_workers_per_iteration": 4000,
                                   "from_workers_per_iteration": 2000}}
    assert communication_claim([run])["verdict"] == REPRODUCED
    big = run | {"communication_bytes": run["communication_bytes"] | {"to_workers_per_iteration": 60_000_000}}
    assert communication_claim([run, big])["verdict"] == NOT_REPRODUCED  # the largest ratio counts
    broadcast = run | {"communication_bytes": run["communication_bytes"] | {"mode": "broadcast"}}
    assert communication_claim([broadcast])["verdict"].startswith(NOT_TESTABLE)


def scaling_table(minutes_by_cores, paper=((18, 657.0), (1440, 10.0))):
    """A scaling.csv frame: ours (target 6000) and the paper's rows, speedup and efficiency relative
    to each source's fewest cores."""
    rows = []
    for source, points in (("ours", minutes_by_cores), ("paper", paper)):
        c0, m0 = points[0]
        rows += [{"source": source, "cpu_cores": c, "target_return": 6000.0, "median_minutes": m,
                  "speedup": m0 / m, "efficiency": m0 / m * c0 / c} for c, m in points]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("points, verdict", [
    (((18, 600.0), (288, 45.0)), REPRODUCED),           # efficiency 0.83 vs 0.82
    (((18, 600.0), (288, 200.0)), SAME_DIRECTION),      # 0.19: faster, far from linear
    (((18, 600.0), (288, 700.0)), NOT_REPRODUCED),      # slower with more cores
    (((1, 10.0), (2, 5.0)), f"{NOT_TESTABLE} (2 cores at most; 144 or more would test it)"),
])
def test_scaling_claim(points, verdict):
    assert scaling_claim(scaling_table(points))["verdict"] == verdict


def atari_frames(gains, updates, seeds=(0,)):
    """Atari ES runs of Pong per frame-skip: eval -21 rising linearly by gain over updates."""
    return pd.DataFrame([
        {"algo": "es", "env": "ALE/Pong-v5", "seed": s, "frame_skip": float(k), "iteration": i,
         "eval_return_mean": -21.0 + gain * i / updates}
        for k, gain in gains.items() for s in seeds for i in range(updates + 1)])


@pytest.mark.parametrize("gains, updates, verdict", [
    ({1: 30.0, 4: 40.0}, 100, REPRODUCED), ({1: 10.0, 4: 40.0}, 100, SAME_DIRECTION),
    ({1: -1.0, 4: 40.0}, 100, NOT_REPRODUCED), ({1: 30.0, 4: 40.0}, 4, None),
    ({1: 0.0, 4: 0.0}, 100, f"{NOT_TESTABLE} (no frame-skip improved in 100 updates)")])
def test_frameskip_claim(gains, updates, verdict):
    row = frameskip_claim(atari_frames(gains, updates), "Pong")
    assert row["verdict"] == (verdict or f"{NOT_TESTABLE} (4 updates per frame-skip; 10 or more would test it)")
    assert row["budget_fraction"] == updates / 100


def test_table2_claim():
    atari = pd.DataFrame({"game": ["Pong", "Breakout"], "es_seeds": [1, 1], "es_frames": [1e9, 1e9],
                          "es_vs_a3c": ["better", "worse"], "es_paper_vs_a3c": ["better", "worse"]})
    learned = atari_frames({4: 10.0}, 5)
    assert table2_claim(atari, learned)["verdict"] == REPRODUCED  # 1 of 2, as the paper on these games
    assert table2_claim(atari.assign(es_vs_a3c="worse"), learned)["verdict"] == NOT_REPRODUCED
    flat = table2_claim(atari, atari_frames({4: 0.0}, 5))
    assert flat["verdict"] == f"{NOT_TESTABLE} (no ES run ended above its initial score)"
    small = table2_claim(atari.assign(es_frames=1e6), learned)
    assert small["verdict"].startswith(f"{NOT_TESTABLE} (ES ran 0.1% of the paper's 1 billion frames")


def test_cli(tmp_path):
    dirs, tables = mujoco_grid(tmp_path, 1.0)
    out = tmp_path / "paper" / "claims.md"
    res = run_cli("claims", "--runs", *dirs, "--table1", tables / "table1.csv", "--table3", tables / "table3.csv",
                  "--out", out)
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert [line.split("|")[-2].strip() for line in lines[4:6]] == [TOO_FEW, REPRODUCED] and len(lines) == 4 + 6
    res = run_cli("claims", "--runs", *dirs, "--table1", tables / "table1.csv", "--out", out)
    assert res.returncode == 2 and res.stderr == (
        f"esrepro: error: claim 1 needs both Table 1 and Table 3 (table1.csv and table3.csv), got "
        f"{tables / 'table1.csv'} alone\n")
    (dirs[0] / "run.json").write_text("{")
    res = run_cli("claims", "--runs", *dirs, "--out", out)
    assert res.returncode == 2 and res.stderr.startswith(f"esrepro: error: {dirs[0] / 'run.json'} is not valid JSON")


def test_communication_of_a_real_scalar_run(tmp_path):
    """A 1-iteration scalar-mode ES run records its bytes; the claim reads them from run.json."""
    params = TINY | {"communication": "scalar", "pairs_per_iteration": 2}
    res = run_cli("train", "--env", "InvertedPendulum-v5", "--seed", 0, "--iterations", 1, "--workers", 1,
                  "--params", json.dumps(params), "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    run = read_run_json(tmp_path / "run" / "run.json")
    row = communication_claim([run])
    sent = sum(run["communication_bytes"][k] for k in ("to_workers_per_iteration", "from_workers_per_iteration"))
    assert row["ours"].startswith(f"{sent:,} bytes per iteration vs {run['num_params'] * 4:,} to broadcast")
    ratio = sent / (run["num_params"] * 4)
    assert row["verdict"] == (REPRODUCED if ratio <= 0.5 else SAME_DIRECTION if ratio < 1 else NOT_REPRODUCED)
    assert not math.isnan(ratio) and np.isfinite(ratio)


def test_table1_without_table3_is_refused(tmp_path):
    with pytest.raises(RunSelectionError, match="needs both Table 1 and Table 3"):
        write_claims([], [tmp_path / "claims.md"], table1_csv=tmp_path / "table1.csv")


def learning_runs(root, env, evals, stds, episodes=5, seeds=(0, 1), **config):
    """ES runs of ``env``, one per seed, with these evaluations (iteration 0: the initial policy) and
    their population sds over ``episodes`` episodes; their directories."""
    return [write_run(root, "es", env, seed, [1000 * i for i in range(len(evals))], evals, stds,
                      config={"eval_episodes": episodes, "target_return": None} | config) for seed in seeds]


def learning_of(tmp_path, dirs):
    table = write_claims(dirs, [tmp_path / "claims.csv"])
    lines = table[table["claim"].str.startswith("Learning")]
    assert lines["claim"].str.startswith("Learning (a sanity check, not a claim of the paper): ES on ").all()
    return lines.set_index(lines["claim"].str.split(" ES on ").str[-1])


@pytest.mark.parametrize("rise, verdict", [(3.2, DID_NOT_LEARN), (3.3, LEARNED), (0.0, DID_NOT_LEARN)])
def test_learning_threshold(tmp_path, rise, verdict):
    """One seed, 3 + 3 evaluations of 5 episodes, sd 4 (population): each row's mean has variance
    16 x 5/4 / 5 = 4, each window's 12 / 9, the rise's 8/3: two standard errors are 3.27."""
    dirs = learning_runs(tmp_path, "Swimmer-v5", [0, 0, 0, rise, rise, rise], [4.0] * 6, seeds=(0,))
    row = learning_of(tmp_path, dirs).loc["Swimmer-v5"]
    assert row["verdict"] == verdict, row.to_dict()
    assert row["ours"] == (f"evaluation 0 (first 3 per run) to {rise:g} (last 3): rise {rise:+.3g}, 2 standard "
                           "errors 3.27 (1 runs, 15 episodes per window)")
    assert row["budget"] == "5 iterations" and math.isnan(row["budget_fraction"]) and row["paper"] == "n/a"


def test_learning_lines_per_env_and_game(tmp_path):
    """Recorded progress files of a grid: ES on a MuJoCo env that learns, one whose rise is within its
    noise, one too short to tell; Atari: a flat game at every frame-skip (only frame-skip 4 makes
    its line), a game that learns, and a scaling run (a target score) that makes none."""
    rising = [0, 1, 2, 8, 9, 10, 11]
    dirs = [*learning_runs(tmp_path / "a", "InvertedPendulum-v5", rising, [3.0] * 7),
            *learning_runs(tmp_path / "b", "Swimmer-v5", [0, 5, -5, 0, 6, -4, 1], [10.0] * 7),
            *learning_runs(tmp_path / "c", "Hopper-v5", rising[:5], [3.0] * 5)]
    for k, evals in ((1, rising), (4, [-21.0] * 7)):  # Pong at frame-skip 1 learns, but Table 2 is at 4
        dirs += learning_runs(tmp_path / f"pong{k}", "ALE/Pong-v5", evals, [0.0] * 7, frame_skip=k)
    dirs += learning_runs(tmp_path / "boxing", "ALE/Boxing-v5", rising, [6.0] * 7, frame_skip=4)
    dirs += learning_runs(tmp_path / "scaling", "Humanoid-v5", rising, [1.0] * 7, seeds=(0,), target_return=9)
    lines = learning_of(tmp_path, dirs)
    assert lines["verdict"].to_dict() == {"Boxing": LEARNED, "Hopper-v5": TOO_FEW,
                                          "InvertedPendulum-v5": LEARNED, "Pong": DID_NOT_LEARN,
                                          "Swimmer-v5": DID_NOT_LEARN}
    assert lines.loc["Pong", "ours"].startswith("evaluation -21 (first 3 per run) to -21 (last 3): rise +0")
    assert lines.loc["Hopper-v5", "ours"] == "a run has 5 evaluations of 2 or more episodes; 6 would tell"


def test_learning_needs_two_episodes_per_evaluation(tmp_path):
    """One episode per evaluation has no sd to tell noise from learning: too few to tell."""
    dirs = learning_runs(tmp_path, "Swimmer-v5", [0, 0, 0, 50, 50, 50], [0.0] * 6, episodes=1)
    assert learning_of(tmp_path, dirs).loc["Swimmer-v5", "verdict"] == TOO_FEW


#: ES runs recorded on 2026-12-06 (tests/data/learning/<game>/seed<k>/: progress.csv and run.json):
#: Seaquest and Boxing, 2 seeds, 20 pairs per update, the small network, 5 evaluation episodes;
#: Seaquest as config/config.yaml but to 10 updates (the grid runs 5), Boxing with sigma 0.01 (8).
RECORDED = REPO / "tests" / "data" / "learning"


@pytest.mark.parametrize("game, verdict", [("Seaquest", LEARNED), ("Boxing", DID_NOT_LEARN)])
def test_learning_of_recorded_runs(tmp_path, game, verdict):
    dirs = sorted((RECORDED / game).glob("seed*"))
    assert len(dirs) == 2
    assert learning_of(tmp_path, dirs).loc[game, "verdict"] == verdict


def test_learning_of_recorded_runs_cut_short(tmp_path):
    """The recorded Seaquest runs cut to their first 5 iterations: 6 evaluations a run, enough to
    tell; cut to 4, too few."""
    for last, verdict in ((5, LEARNED), (4, TOO_FEW)):
        dirs = []
        for run in sorted((RECORDED / "Seaquest").glob("seed*")):
            out = tmp_path / f"cut{last}" / run.name
            out.mkdir(parents=True)
            progress = pd.read_csv(run / "progress.csv")
            progress[progress["iteration"] <= last].to_csv(out / "progress.csv", index=False)
            (out / "run.json").write_bytes((run / "run.json").read_bytes())
            dirs.append(out)
        assert learning_of(tmp_path / f"cut{last}", dirs).loc["Seaquest", "verdict"] == verdict

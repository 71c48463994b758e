"""Tests of paper Tables 1 and 3 (esrepro.analysis.mujoco_tasks) on synthetic runs with
hand-computed answers."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esrepro.analysis.curves import first_reach
from esrepro.analysis.mujoco_tasks import (
    NO_PROGRESS_TEXT,
    TABLE3_COLUMNS,
    load_compared_runs,
    mujoco_tables,
    trpo_levels,
    write_mujoco_tables,
)

REFERENCE = Path(__file__).resolve().parents[1] / "paper" / "reference"
PAPER_TABLE1 = REFERENCE / "table1_mujoco_ratios.csv"
PAPER_TABLE3 = REFERENCE / "table3_mujoco_detail.csv"
PAPER1 = pd.read_csv(PAPER_TABLE1)


def write_run(root, algo, env, seed, timesteps, evals, config=None):
    """Write a run directory (progress.csv + run.json; TRPO runs without a preset in ``config`` ran the zoo's)
    and return its path."""
    run_dir = Path(root) / f"{algo}_{env}_{seed}_{(config or {}).get('preset', '')}"
    run_dir.mkdir(parents=True)
    n = len(timesteps)
    pd.DataFrame({
        "iteration": np.arange(n), "timesteps": timesteps, "episodes": 10 * np.arange(n),
        "wall_time_s": np.linspace(0.0, 5.0, n), "return_mean": [np.nan] + [1.0] * (n - 1),
        "return_std": [np.nan] + [1.0] * (n - 1), "return_max": [np.nan] + [2.0] * (n - 1),
        "eval_return_mean": evals, "eval_return_std": 0.0, "eval_length_mean": 1000.0,
    }).to_csv(run_dir / "progress.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps(
        {"algo": algo, "env": env, "seed": seed, "wall_time_s": 6.0, "config": config or {}}))
    return run_dir


# One seed each; TRPO: initial 10, final 110, so the targets are 35, 60, 85, 110, each hit exactly.
# ES (its own grid) reaches 35 at its first point after 0 (40), dips, reaches 60 at 250, dips
# again, reaches 85 at 700 and never 110.
PENDULUM = {
    ("trpo", 0): ([0, 100, 200, 300, 400], [10.0, 35.0, 60.0, 85.0, 110.0]),
    ("es", 0): ([0, 50, 150, 250, 350, 700], [0.0, 40.0, 30.0, 70.0, 50.0, 100.0]),
}
# Two seeds each on different grids. TRPO union grid 0, 100, 150, 200, means 0, 20, 50, 100.
# ES: union 0, 30, 60, 90, 120, 130; common coverage ends at 120 (seed 0 stops there); means
# 0, 40, 45, 15, 75 -- seed 1 alone reaches 200 at 130, which must not count.
SWIMMER = {
    ("trpo", 0): ([0, 100, 200], [0.0, 40.0, 100.0]),
    ("trpo", 1): ([0, 150, 200], [0.0, 60.0, 100.0]),
    ("es", 0): ([0, 30, 90, 120], [0.0, 80.0, 20.0, 90.0]),
    ("es", 1): ([0, 60, 120, 130], [0.0, 10.0, 60.0, 200.0]),
}
# TRPO gets worse: no learning progress.
HOPPER = {
    ("trpo", 0): ([0, 100], [50.0, 40.0]),
    ("es", 0): ([0, 100], [0.0, 60.0]),
}


def make_runs(root, **envs):
    """Write the runs of {env: {(algo, seed): (timesteps, evals)}}; return their directories."""
    return [write_run(root, algo, env, seed, xs, ys)
            for env, runs in envs.items() for (algo, seed), (xs, ys) in runs.items()]


def rows(table3, env):
    return table3[table3["env"] == env].set_index("progress_pct")


@pytest.fixture
def tables(tmp_path):
    dirs = make_runs(tmp_path, **{"InvertedPendulum-v5": PENDULUM, "Swimmer-v5": SWIMMER,
                                  "Hopper-v5": HOPPER})
    return mujoco_tables(load_compared_runs(dirs), paper_table1=PAPER1)


# ---------------------------------------------------------------- first_reach

def test_first_reach_first_crossing_of_non_monotone_curve():
    x, y = [0, 10, 20, 30, 40], [0.0, 5.0, 2.0, 7.0, 1.0]
    assert first_reach(x, y, 5.0) == 10.0  # equality counts
    assert first_reach(x, y, 6.0) == 30.0  # the dip at 20 and the fall at 40 do not matter
    assert first_reach(x, y, 0.0) == 0.0
    assert math.isnan(first_reach(x, y, 7.5))
    assert math.isnan(first_reach(x, y, math.nan))
    assert first_reach(np.array([0, 1, 2]), np.array([np.nan, 3.0, 4.0]), 1.0) == 1.0


@pytest.mark.parametrize("x, y", [([0, 2, 1], [0, 1, 2]), ([0, 1], [0, 1, 2]),
                                  ([[0, 1]], [[0, 1]])])
def test_first_reach_rejects_bad_input(x, y):
    with pytest.raises(ValueError):
        first_reach(x, y, 1.0)


# ---------------------------------------------------------------- Table 3

def test_table3_one_seed_exact_hits_dips_and_unreached_target(tables):
    _, table3 = tables
    assert list(table3.columns) == list(TABLE3_COLUMNS)
    r = rows(table3, "InvertedPendulum-v5")
    assert r.index.tolist() == [25, 50, 75, 100]
    assert r["trpo_score"].tolist() == [35.0, 60.0, 85.0, 110.0]
    assert r["trpo_timesteps"].tolist() == [100.0, 200.0, 300.0, 400.0]
    assert r["es_timesteps"].tolist()[:3] == [50.0, 250.0, 700.0]
    assert math.isnan(r.loc[100, "es_timesteps"])
    assert r["ratio"].tolist()[:3] == pytest.approx([0.5, 1.25, 700 / 300])
    assert math.isnan(r.loc[100, "ratio"])
    # never reached: lower bound = ES's last timestep / TRPO's = 700 / 400
    assert r["ratio_text"].tolist() == ["0.50", "1.25", "2.33", "> 1.75"]
    assert r["es_seeds"].tolist() == [1] * 4 and r["trpo_seeds"].tolist() == [1] * 4


def test_table3_two_seed_means_on_different_grids(tables):
    _, table3 = tables
    r = rows(table3, "Swimmer-v5")
    assert r["trpo_score"].tolist() == [25.0, 50.0, 75.0, 100.0]
    # TRPO mean 20 at 100 < 25, 50 at 150
    assert r["trpo_timesteps"].tolist() == [150.0, 150.0, 200.0, 200.0]
    # ES mean 40 at 30 (seed 1 still 0), 45 at 60, 15 at 90, 75 at 120
    assert r["es_timesteps"].tolist()[:3] == [30.0, 120.0, 120.0]
    assert math.isnan(r.loc[100, "es_timesteps"])  # seed 1's 200 at 130 is not commonly covered
    assert r["ratio"].tolist()[:3] == pytest.approx([0.2, 0.8, 0.6])
    assert r["ratio_text"].tolist() == ["0.20", "0.80", "0.60", "> 0.60"]
    assert r["es_seeds"].tolist() == [2] * 4 and r["trpo_seeds"].tolist() == [2] * 4


def test_table3_no_trpo_progress(tables):
    _, table3 = tables
    r = rows(table3, "Hopper-v5")
    assert r["ratio_text"].tolist() == [NO_PROGRESS_TEXT] * 4
    assert r[["trpo_timesteps", "es_timesteps", "ratio"]].isna().all().all()
    assert r["trpo_score"].tolist() == [47.5, 45.0, 42.5, 40.0]


def test_flat_trpo_is_no_progress_too(tmp_path):
    dirs = make_runs(tmp_path, **{"Hopper-v5": {("trpo", 0): ([0, 100], [5.0, 5.0]),
                                                 ("es", 0): ([0, 100], [5.0, 9.0])}})
    _, table3 = mujoco_tables(load_compared_runs(dirs), paper_table1=PAPER1)
    assert table3["ratio_text"].tolist() == [NO_PROGRESS_TEXT] * 4


def test_full_progress_target_is_reached_despite_rounding(tmp_path):
    initial, final = -55.83, 2011.39
    assert initial + 1.0 * (final - initial) > final  # the naive formula would miss the target
    dirs = make_runs(tmp_path, **{"Walker2d-v5": {
        ("trpo", 0): ([0, 100], [initial, final]), ("es", 0): ([0, 40], [initial, final])}})
    _, table3 = mujoco_tables(load_compared_runs(dirs), levels=(100,), paper_table1=PAPER1)
    assert table3["trpo_timesteps"].tolist() == [100.0]
    assert table3["es_timesteps"].tolist() == [40.0]
    assert table3["ratio_text"].tolist() == ["0.40"]


def test_budget_sets_the_final_score(tmp_path):
    dirs = make_runs(tmp_path, **{"Swimmer-v5": {
        ("trpo", 0): ([0, 100, 200, 300], [0.0, 50.0, 100.0, 40.0]),
        ("es", 0): ([0, 10, 20], [0.0, 30.0, 100.0])}})
    runs = load_compared_runs(dirs)
    _, t = mujoco_tables(runs, budget_timesteps=250, paper_table1=PAPER1)
    assert t["trpo_score"].tolist() == [25.0, 50.0, 75.0, 100.0]
    assert t["trpo_timesteps"].tolist() == [100.0, 100.0, 200.0, 200.0]
    assert t["es_timesteps"].tolist() == [10.0, 20.0, 20.0, 20.0]
    _, t = mujoco_tables(runs, budget_timesteps=150, paper_table1=PAPER1)
    assert t["trpo_score"].tolist() == [12.5, 25.0, 37.5, 50.0]
    assert t["trpo_timesteps"].tolist() == [100.0] * 4
    _, t = mujoco_tables(runs, paper_table1=PAPER1)  # final: the last point, 40
    assert t["trpo_score"].tolist() == [10.0, 20.0, 30.0, 40.0]
    with pytest.warns(UserWarning, match="Swimmer-v5.*ends at 300"):
        _, t = mujoco_tables(runs, budget_timesteps=5e6, paper_table1=PAPER1)
    assert t["trpo_score"].tolist() == [10.0, 20.0, 30.0, 40.0]
    with pytest.raises(ValueError, match="before the first point"):
        mujoco_tables(runs, budget_timesteps=-1, paper_table1=PAPER1)


def test_env_with_one_algo_is_skipped_with_warning(tmp_path):
    dirs = make_runs(tmp_path, **{"Swimmer-v5": SWIMMER,
                                  "Ant-v5": {("es", 0): ([0, 10], [0.0, 1.0])},
                                  "Humanoid-v5": {("trpo", 3): ([0, 10], [0.0, 1.0]),
                                                  ("a2c", 0): ([0, 10], [0.0, 1.0])}})
    with pytest.warns(UserWarning) as record:
        table1, table3 = mujoco_tables(load_compared_runs(dirs), paper_table1=PAPER1)
    messages = [str(w.message) for w in record]
    assert any("Ant-v5" in m and "trpo" in m for m in messages)
    assert any("Humanoid-v5" in m and "no es" in m for m in messages)
    assert set(table3["env"]) == {"Swimmer-v5"} and table1["env"].tolist() == ["Swimmer-v5"]


@pytest.mark.parametrize("levels", [(0, 50), (25, 150), ()])
def test_levels_outside_zero_to_hundred_rejected(tmp_path, levels):
    runs = load_compared_runs(make_runs(tmp_path, **{"Swimmer-v5": SWIMMER}))
    with pytest.raises(ValueError, match="levels"):
        mujoco_tables(runs, levels=levels, paper_table1=PAPER1)


# ---------------------------------------------------------------- Table 1

def test_table1_ratio_texts_and_paper_columns(tables, tmp_path):
    table1, _ = tables
    assert table1.columns.tolist() == [
        "env", "trpo_preset", "progress_25", "progress_50", "progress_75", "progress_100",
        "paper_25", "paper_50", "paper_75", "paper_100"]
    t = table1.set_index("env")
    assert t.index.tolist() == ["Hopper-v5", "InvertedPendulum-v5", "Swimmer-v5"]
    assert t.loc["InvertedPendulum-v5", ["progress_25", "progress_50", "progress_75",
                                         "progress_100"]].tolist() == \
        ["0.50", "1.25", "2.33", "> 1.75"]
    assert t.loc["InvertedPendulum-v5", ["paper_25", "paper_50", "paper_75", "paper_100"]] \
        .tolist() == [0.28, 0.52, 0.78, 0.88]
    assert t.loc["Swimmer-v5", "paper_100"] == 0.30
    assert t.loc["Hopper-v5", "paper_75"] == 6.05
    assert t.loc["Hopper-v5", "progress_50"] == NO_PROGRESS_TEXT
    # an env the paper lacks gets NaN paper ratios
    dirs = make_runs(tmp_path, **{"Ant-v5": PENDULUM})
    table1, _ = mujoco_tables(load_compared_runs(dirs), paper_table1=PAPER1)
    assert table1[["paper_25", "paper_100"]].isna().all().all()


# ---------------------------------------------------------------- writing

def test_write_mujoco_tables_csv_md_tex(tmp_path):
    dirs = make_runs(tmp_path / "runs", **{"InvertedPendulum-v5": PENDULUM,
                                           "Swimmer-v5": SWIMMER, "Hopper-v5": HOPPER})
    out = tmp_path / "out" / "tables"
    table1, table3 = write_mujoco_tables(dirs, PAPER_TABLE1, PAPER_TABLE3,
                                         [out / f"table1.{s}" for s in ("csv", "md", "tex")],
                                         [out / f"table3.{s}" for s in ("csv", "md", "tex")])
    assert sorted(p.name for p in out.iterdir()) == [
        "table1.csv", "table1.md", "table1.tex", "table3.csv", "table3.md", "table3.tex"]

    csv1 = pd.read_csv(out / "table1.csv", keep_default_na=False)
    assert csv1.loc[csv1["env"] == "InvertedPendulum-v5", "progress_100"].item() == "> 1.75"
    assert csv1.loc[csv1["env"] == "InvertedPendulum-v5", "paper_100"].item() == 0.88
    csv3 = pd.read_csv(out / "table3.csv")
    assert csv3.columns.tolist() == list(TABLE3_COLUMNS)
    pendulum = csv3[csv3["env"] == "InvertedPendulum-v5"]
    assert pendulum["es_timesteps"].isna().tolist() == [False, False, False, True]
    assert pendulum["ratio"].iloc[:3].tolist() == pytest.approx([0.5, 1.25, 700 / 300])

    md1 = (out / "table1.md").read_text()
    assert md1.startswith("Table 1:")
    pendulum_row = next(line for line in md1.splitlines()
                        if line.startswith("| InvertedPendulum-v5"))
    assert [c.strip() for c in pendulum_row.strip("|").split("|")] == [
        "InvertedPendulum-v5", "zoo", "0.50", "0.28", "1.25", "0.52", "2.33", "0.78", "> 1.75", "0.88"]
    assert NO_PROGRESS_TEXT in md1
    md3 = (out / "table3.md").read_text()
    assert md3.startswith("Table 3:")
    cells = next(cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                     for line in md3.splitlines()[2:])
                 if cells[:3] == ["InvertedPendulum-v5", "zoo", "100"])
    # ours, then the paper's (Table 3: 1000.00, 5.17e5, 4.55e5, 0.88), side by side
    assert cells == ["InvertedPendulum-v5", "zoo", "100", "110.00", "1000.00", "4.00e2", "5.17e5",
                     "not reached", "4.55e5", "> 1.75", "0.88", "1", "1"]

    tex1 = (out / "table1.tex").read_text()
    assert r"\label{tab:table1}" in tex1 and r"\caption{" in tex1
    assert r"\toprule" in tex1 and r"\bottomrule" in tex1
    assert r"\textgreater{} 1.75" in tex1 and "0.88" in tex1
    assert "Hopper-v5 & zoo & n/a (no TRPO progress)" in tex1
    assert "TRPO preset zoo (config/trpo_params.schema.yaml)" in md1 and "TRPO preset zoo" in md3
    tex3 = (out / "table3.tex").read_text()
    assert r"\label{tab:table3}" in tex3 and "5.17e5" in tex3 and r"\%" in tex3
    assert ">" not in tex3.replace(r"\textgreater{}", "")


def test_write_mujoco_tables_nothing_to_compare(tmp_path):
    dirs = make_runs(tmp_path / "runs", **{"Ant-v5": {("es", 0): ([0, 10], [0.0, 1.0])}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="both ES and TRPO"):
            write_mujoco_tables(dirs, PAPER_TABLE1, PAPER_TABLE3, [tmp_path / "t1.csv", tmp_path / "t1.md"],
                                [tmp_path / "t3.csv", tmp_path / "t3.tex"])
    assert not list(tmp_path.glob("t*"))


# ---------------------------------------------------------------- presets

def test_each_trpo_preset_makes_its_own_rows(tmp_path):
    """The same ES runs against the TRPO runs of two presets (same env and seed): one row group per
    preset, each from its own TRPO runs only."""
    pendulum = {("es", 0): PENDULUM[("es", 0)]}
    dirs = make_runs(tmp_path, **{"InvertedPendulum-v5": pendulum})
    dirs.append(write_run(tmp_path, "trpo", "InvertedPendulum-v5", 0, *PENDULUM[("trpo", 0)],
                          config={"preset": "paper2017"}))
    dirs.append(write_run(tmp_path, "trpo", "InvertedPendulum-v5", 0, [0, 10, 20, 30, 40],
                          [10.0, 35.0, 60.0, 85.0, 110.0], config={"preset": "zoo"}))  # 10x faster
    table1, table3 = mujoco_tables(load_compared_runs(dirs), paper_table1=PAPER1)
    assert table1[["env", "trpo_preset"]].values.tolist() == [["InvertedPendulum-v5", "paper2017"],
                                                              ["InvertedPendulum-v5", "zoo"]]
    paper2017, zoo = (table3[table3["trpo_preset"] == p].set_index("progress_pct") for p in ("paper2017", "zoo"))
    assert paper2017["trpo_timesteps"].tolist() == [100.0, 200.0, 300.0, 400.0]
    assert zoo["trpo_timesteps"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert paper2017["es_timesteps"].tolist()[:3] == zoo["es_timesteps"].tolist()[:3] == [50.0, 250.0, 700.0]
    assert table1.set_index("trpo_preset").loc["zoo", "progress_25"] == "5.00"
    assert (table3["trpo_seeds"] == 1).all()


def test_trpo_levels_alone(tmp_path):
    """TRPO's side of Table 3 without ES runs (the batch calibration, benchmarks/trpo_calibration.py)."""
    runs = load_compared_runs(make_runs(tmp_path, **{"Swimmer-v5": {k: v for k, v in SWIMMER.items()
                                                                    if k[0] == "trpo"}}))
    levels = trpo_levels(runs, "Swimmer-v5")
    assert levels["trpo_score"].tolist() == [25.0, 50.0, 75.0, 100.0]
    assert levels["trpo_timesteps"].tolist() == [150.0, 150.0, 200.0, 200.0]
    assert (levels["trpo_seeds"] == 2).all()
    assert trpo_levels(runs, "Hopper-v5").empty

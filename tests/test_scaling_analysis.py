"""Tests of esrepro.analysis.scaling (paper Figure 1) on synthetic run directories written with the
package's own writers, with hand-computed medians, speedups and efficiencies."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esrepro.analysis.runs import RunFileError, load_runs
from esrepro.analysis.scaling import (
    BATCH_LABELS,
    META_COLUMNS,
    SCALING_COLUMNS,
    plot_scaling,
    read_simulation,
    repeat_times,
    scaling_caption,
    scaling_table,
    time_to_target,
    write_scaling,
)
from esrepro.atomic import write_json
from esrepro.progress import write_progress

from conftest import run_cli

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "paper" / "reference" / "scaling_humanoid.csv"
TARGET = 3000.0


def write_run(root, workers, seed, minutes, target=TARGET, env="Humanoid-v5"):
    """A scaling run, one iteration per minute: the evaluation stays at 100 and jumps to
    target + 1 at minute `minutes` (or never, for None: the run stops after 10 minutes)."""
    run_dir = Path(root) / f"w{workers}" / f"seed{seed}"
    n = 11 if minutes is None else minutes + 1
    evals = [100.0] * n if minutes is None else [100.0] * minutes + [target + 1]
    rows = [{"iteration": i, "timesteps": 1000 * i, "episodes": 10 * i, "wall_time_s": 60.0 * i,
             "eval_return_mean": e} for i, e in enumerate(evals)]
    write_progress(run_dir / "progress.csv", rows)
    write_json(run_dir / "run.json", {"algo": "es", "env": env, "seed": seed, "workers": workers,
                                      "config": {"target_return": target}, "wall_time_s": 60.0 * n})
    return run_dir


# minutes to target per repeat; None: never reached
GRID = {1: (10, 30, 20), 2: (6, None, 12), 4: (5, None, None)}


@pytest.fixture
def run_dirs(tmp_path):
    return [write_run(tmp_path, w, seed, m) for w, repeats in GRID.items()
            for seed, m in enumerate(repeats)]


# ---------------------------------------------------------------- time_to_target

def progress(evals, wall=None):
    wall = [10.0 * i + 5 for i in range(len(evals))] if wall is None else wall
    return pd.DataFrame({"iteration": range(len(evals)), "wall_time_s": wall,
                         "eval_return_mean": evals})


def test_time_to_target_first_crossing_counts():
    run = progress([0.0, 50.0, 99.0, 100.0, 80.0, 120.0])
    assert time_to_target(run, 100.0) == 35.0  # equality reaches; the later dip does not matter
    assert time_to_target(run.iloc[::-1], 100.0) == 35.0  # row order does not matter
    assert time_to_target(progress([0.0, np.nan, 200.0]), 100.0) == 25.0


def test_time_to_target_never_reached_is_nan():
    assert math.isnan(time_to_target(progress([0.0, 50.0, 99.9]), 100.0))
    assert math.isnan(time_to_target(progress([0.0, 50.0]), math.nan))


def test_time_to_target_reached_at_row_0():
    assert time_to_target(progress([150.0, 0.0], wall=[2.5, 60.0]), 100.0) == 2.5


def test_time_to_target_rejects_clock_running_backwards():
    with pytest.raises(ValueError, match="non-decreasing"):
        time_to_target(progress([0.0, 1.0, 2.0], wall=[0.0, 20.0, 10.0]), 2.0)


# ---------------------------------------------------------------- table

def test_repeat_times(run_dirs):
    times = repeat_times(load_runs(run_dirs, META_COLUMNS))
    assert times["cpu_cores"].tolist() == [1, 1, 1, 2, 2, 2, 4, 4, 4]
    assert times["minutes"].fillna(-1).tolist() == [10, 30, 20, 6, -1, 12, 5, -1, -1]


def test_scaling_table_median_speedup_efficiency(run_dirs):
    table = scaling_table(load_runs(run_dirs, META_COLUMNS), pd.read_csv(REFERENCE_CSV))
    assert list(table.columns) == list(SCALING_COLUMNS)
    assert table["source"].tolist() == ["ours"] * 3 + ["paper"] * 2
    ours = table[table["source"] == "ours"].set_index("cpu_cores")
    assert ours["repeats"].tolist() == [3, 3, 3] and ours["reached"].tolist() == [3, 2, 1]
    assert set(ours["target_return"]) == {TARGET} and set(ours["env"]) == {"Humanoid-v5"}
    # medians: of 10, 30, 20; of 6, 12 and a never-reached (slowest); 2 of 3 never reached: n/a
    assert ours.loc[1, "median_minutes"] == 20 and ours.loc[2, "median_minutes"] == 12
    assert math.isnan(ours.loc[4, "median_minutes"])
    assert ours.loc[2, "speedup"] == pytest.approx(20 / 12)
    assert ours.loc[2, "efficiency"] == pytest.approx(20 / 12 / 2)
    assert ours.loc[1, "speedup"] == ours.loc[1, "efficiency"] == 1.0
    assert math.isnan(ours.loc[4, "speedup"])


def test_scaling_table_paper_rows():
    table = scaling_table(
        pd.DataFrame({"algo": "es", "env": "Humanoid-v5", "seed": 0, "workers": 8,
                      "target_return": 6000.0, "iteration": [0, 1], "wall_time_s": [0.0, 90.0],
                      "eval_return_mean": [0.0, 6000.0]}),
        pd.read_csv(REFERENCE_CSV))
    paper = table[table["source"] == "paper"].set_index("cpu_cores")
    assert paper["median_minutes"].tolist() == [657.0, 10.0]
    assert paper["repeats"].tolist() == [7, 7] and paper["reached"].isna().all()
    assert paper.loc[1440, "speedup"] == pytest.approx(65.7)
    assert paper.loc[1440, "efficiency"] == pytest.approx(65.7 / 80)
    assert set(paper["target_return"]) == {6000.0}


def test_scaling_runs_must_share_one_target(tmp_path):
    dirs = [write_run(tmp_path, 1, 0, 3), write_run(tmp_path, 2, 0, 2, target=6000.0)]
    with pytest.raises(ValueError, match="target_return"):
        scaling_table(load_runs(dirs, META_COLUMNS), pd.read_csv(REFERENCE_CSV))


def test_scaling_run_without_target_names_it(tmp_path):
    run_dir = write_run(tmp_path, 1, 0, 3)
    write_json(run_dir / "run.json", {"algo": "es", "env": "Humanoid-v5", "seed": 0, "workers": 1,
                                      "config": {"target_return": None}, "wall_time_s": 1.0})
    with pytest.raises(ValueError, match="seed=0 workers=1.*config.target_return"):
        repeat_times(load_runs([run_dir], META_COLUMNS))


# ---------------------------------------------------------------- outputs

def test_write_scaling_files_caption_and_figure(run_dirs, tmp_path):
    prefix = tmp_path / "tables" / "scaling"
    png, pdf = tmp_path / "figures" / "fig1_scaling.png", tmp_path / "figures" / "fig1_scaling.pdf"
    written = write_scaling(run_dirs, REFERENCE_CSV, [prefix.with_suffix(".csv"), prefix.with_suffix(".md")],
                            [png, pdf])
    pd.testing.assert_frame_equal(pd.read_csv(prefix.with_suffix(".csv")), written,
                                  check_dtype=False)
    md = prefix.with_suffix(".md").read_text()
    assert "evaluation return of 3000 on Humanoid-v5" in md
    assert "differs from the paper's 6000" in md and "Humanoid-v1" in md
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000


def test_plot_scaling_medians_repeats_and_linear_speedup_lines(run_dirs, tmp_path):
    runs = load_runs(run_dirs, META_COLUMNS)
    fig = plot_scaling(scaling_table(runs, pd.read_csv(REFERENCE_CSV)), repeat_times(runs),
                       [tmp_path / "f.png"])
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    lines = {line.get_label(): line for line in ax.get_lines()}
    median = lines["ours, median (Humanoid-v5, target 3000)"]
    assert list(median.get_xdata()) == [1, 2, 4]
    assert np.array_equal(median.get_ydata(), [20, 12, np.nan], equal_nan=True)
    ideal = lines["ours, linear speedup"]  # through (1 core, 20 min)
    assert list(ideal.get_xdata()) == [1, 4] and list(ideal.get_ydata()) == [20, 5]
    paper_ideal = lines["paper, linear speedup"]  # through (18 cores, 657 min)
    assert list(paper_ideal.get_xdata()) == [18, 1440]
    assert list(paper_ideal.get_ydata()) == pytest.approx([657, 657 * 18 / 1440])
    repeats = ax.collections[0].get_offsets()  # the 6 repeats that reached the target
    assert sorted(map(tuple, np.asarray(repeats))) == [(1, 10), (1, 20), (1, 30), (2, 6), (2, 12),
                                                       (4, 5)]


def test_cli_scaling(run_dirs, tmp_path):
    figures = [tmp_path / "paper" / "figures" / f"fig1_scaling.{s}" for s in ("png", "pdf")]
    table = tmp_path / "paper" / "tables" / "scaling"
    done = run_cli("scaling", "--runs", *run_dirs, "--reference", REFERENCE_CSV,
                   "--table", table.with_suffix(".csv"), table.with_suffix(".md"), "--figure", *figures)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(table.with_suffix(".csv"))["source"].tolist() == ["ours"] * 3 + ["paper"] * 2
    assert all(f.stat().st_size > 1_000 for f in figures)


# ---------------------------------------------------------------- the simulated efficiency curve

#: benchmarks/scale_simulation.py's CSV format (with a column Figure 1 does not read); efficiencies
#: and ceilings made up here.
SIMULATION = {"all": ((0.97, 0.80, 0.40, 0.22), (0.99, 0.94, 0.86, 0.77)),
              "first_come": ((0.96, 0.70, 0.30, 0.14), (0.99, 0.97, 0.94, 0.92))}
SIM_WORKERS = (18, 144, 720, 1440)
ALL, FIRST_COME = BATCH_LABELS["all"], BATCH_LABELS["first_come"]


@pytest.fixture
def simulation_csv(tmp_path):
    rows = [{"batch": batch, "workers": n, "hosts": n // 18, "iteration_s": 2.0 / e * 18 / n, "ideal_s": 2.0 * 18 / n,
             "efficiency": e, "ceiling": c}
            for batch, (effs, ceilings) in SIMULATION.items() for n, e, c in zip(SIM_WORKERS, effs, ceilings)]
    path = tmp_path / "scale_simulation.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_simulation_both_rules_or_one(simulation_csv):
    sim = read_simulation(simulation_csv)
    assert list(dict.fromkeys(sim["variant"])) == [ALL, FIRST_COME]
    det = sim[sim["variant"] == ALL]
    assert det["cpu_cores"].tolist() == list(SIM_WORKERS)
    assert (det["efficiency"].tolist(), det["ceiling"].tolist()) == tuple(map(list, SIMULATION["all"]))
    assert set(read_simulation(simulation_csv, "first_come")["variant"]) == {FIRST_COME}


def test_read_simulation_names_missing_rule_unknown_rule_and_columns(simulation_csv, tmp_path):
    with pytest.raises(RunFileError, match=r"no rows of batch rule 'x' \(its rules: all, first_come\)"):
        read_simulation(simulation_csv, "x")
    broken = tmp_path / "broken.csv"
    pd.read_csv(simulation_csv).drop(columns="ceiling").to_csv(broken, index=False)
    with pytest.raises(RunFileError, match="ceiling"):
        read_simulation(broken)
    old = pd.read_csv(simulation_csv).replace({"batch": {"all": "rounds"}})
    old.to_csv(broken, index=False)
    with pytest.raises(RunFileError, match=r"unknown batch rule\(s\) 'rounds' \(known: all, first_come\)"):
        read_simulation(broken)


def test_table_and_figure_show_the_simulated_curves_apart(run_dirs, simulation_csv, tmp_path):
    runs = load_runs(run_dirs, META_COLUMNS)
    sim = read_simulation(simulation_csv)
    table = scaling_table(runs, pd.read_csv(REFERENCE_CSV), sim)
    simulated = table[table["source"].str.startswith("simulated")]
    assert simulated["source"].tolist() == [f"simulated: {ALL}"] * 4 + [f"simulated: {FIRST_COME}"] * 4
    assert simulated["efficiency"].tolist() == [*SIMULATION["all"][0], *SIMULATION["first_come"][0]]
    assert simulated["speedup"].isna().all() and simulated["median_minutes"].isna().all()
    assert table["repeats"].tolist()[:5] == [3, 3, 3, 7, 7] and simulated["repeats"].isna().all()
    assert "'simulated' rows are not runs" in scaling_caption(table)

    fig = plot_scaling(table, repeat_times(runs), [tmp_path / "f.png"], sim)
    eff = fig.axes[1]
    lines = {line.get_label(): line for line in eff.get_lines()}
    for batch, label in (("all", ALL), ("first_come", FIRST_COME)):
        curve = lines[f"simulated (benchmarks/scale_simulation.py): {label}"]
        ceiling = lines[f"simulated ceiling (free coordination): {label}"]
        assert list(curve.get_xdata()) == list(ceiling.get_xdata()) == list(SIM_WORKERS)
        assert (list(curve.get_ydata()), list(ceiling.get_ydata())) == tuple(map(list, SIMULATION[batch]))
    paper = lines["paper: 0.82 at 1,440 cores"]
    assert list(paper.get_xdata()) == [18, 1440] and list(paper.get_ydata()) == pytest.approx([1.0, 65.7 / 80])
    ours = lines["_ours"]  # measured, relative to our fewest cores: 1, 20/12/2, n/a
    assert np.array_equal(ours.get_ydata(), [1.0, 20 / 12 / 2, np.nan], equal_nan=True)
    assert eff.get_xscale() == "log" and eff.get_ylim()[0] == 0.0


def test_cli_scaling_with_simulation(run_dirs, simulation_csv, tmp_path):
    table = tmp_path / "scaling.csv"
    args = ("scaling", "--runs", *run_dirs, "--reference", REFERENCE_CSV, "--table", table, table.with_suffix(".md"),
            "--figure", tmp_path / "fig1.png")
    done = run_cli(*args, "--simulation", simulation_csv, "--simulation-batch", "first_come")
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(table)["source"].tolist() == ["ours"] * 3 + ["paper"] * 2 + [f"simulated: {FIRST_COME}"] * 4
    last = table.with_suffix(".md").read_text().strip().splitlines()[-1]
    assert [cell.strip() for cell in last.strip("|").split("|")] == [
        f"simulated: {FIRST_COME}", "n/a", "n/a", "1440", "n/a", "n/a", "n/a", "n/a", "0.14"]

    table.unlink()
    for bad, message in [(("--simulation-batch", "all"), "batch rule 'all' given without a simulation file"),
                         (("--simulation", simulation_csv, "--simulation-batch", "x"), "no rows of batch rule 'x'")]:
        done = run_cli(*args, *bad)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not table.exists()

"""Tests of the run loader, the curves and the MuJoCo summary and learning-curve figure
(esrepro.analysis.runs, .curves, .mujoco_tasks) on synthetic run directories with hand-computed
curves."""

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esrepro.analysis.curves import mean_curve, resample_curves
from esrepro.analysis.mujoco_tasks import plot_learning_curves, summarize_es_mujoco, write_summary
from esrepro.analysis.runs import PROGRESS_COLUMNS, RunFileError, load_runs

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "paper" / "reference" / \
    "table3_mujoco_detail.csv"
TRPO_HALFCHEETAH_PAPER = 2385.79  # Table 3, HalfCheetah, 100% progress


def write_run(root, name, algo, env, seed, timesteps, evals, wall_time_s=10.0):
    """Write progress.csv (rows in reverse order, plus an extra column) and run.json."""
    run_dir = Path(root) / name
    run_dir.mkdir(parents=True)
    n = len(timesteps)
    progress = pd.DataFrame({
        "iteration": np.arange(n),
        "timesteps": timesteps,
        "episodes": 10 * np.arange(n),
        "wall_time_s": np.linspace(0.0, wall_time_s, n),
        "return_mean": [np.nan] + [float(v) - 1 for v in evals[1:]],
        "return_std": [np.nan] + [1.0] * (n - 1),
        "return_max": [np.nan] + [float(v) + 1 for v in evals[1:]],
        "eval_return_mean": evals,
        "eval_return_std": 0.0,
        "eval_length_mean": 1000.0,
        "noise_checksum": 7,
    })
    progress.iloc[::-1].to_csv(run_dir / "progress.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({
        "algo": algo, "env": env, "seed": seed, "wall_time_s": wall_time_s + 1,
        "config": {"sigma": 0.02}}))
    return run_dir


def curves_frame(runs):
    """A long frame like load_runs' from {(algo, env, seed): (timesteps, evals)}."""
    return pd.concat([
        pd.DataFrame({"algo": algo, "env": env, "seed": seed, "iteration": np.arange(len(xs)),
                      "timesteps": xs, "eval_return_mean": ys})
        for (algo, env, seed), (xs, ys) in runs.items()], ignore_index=True)


def step_value(xs, ys, g):
    """Reference step interpolation: the last y at x <= g, or None outside [xs[0], xs[-1]]."""
    if g < xs[0] or g > xs[-1]:
        return None
    return [y for x, y in zip(xs, ys) if x <= g][-1]


# ---------------------------------------------------------------- loading

def test_load_runs_ids_from_run_json_sorted_with_all_columns(tmp_path):
    a = write_run(tmp_path, "trpo/Wrong-v0/seed9", "es", "HalfCheetah-v5", 3,
                  [0, 10, 20], [1.0, 2.0, 3.0])
    b = write_run(tmp_path, "other", "es", "HalfCheetah-v5", 4, [0, 15], [5.0, 6.0])
    runs = load_runs([a, str(b)])
    assert list(runs.columns[:3]) == ["algo", "env", "seed"]
    assert set(PROGRESS_COLUMNS) | {"noise_checksum"} <= set(runs.columns)
    assert len(runs) == 5
    assert set(runs["algo"]) == {"es"} and set(runs["env"]) == {"HalfCheetah-v5"}
    seed3 = runs[runs["seed"] == 3]
    assert seed3["iteration"].tolist() == [0, 1, 2]
    assert seed3["eval_return_mean"].tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(seed3["return_mean"].iloc[0])


@pytest.mark.parametrize("missing", ["progress.csv", "run.json"])
def test_load_runs_names_missing_file(tmp_path, missing):
    run_dir = write_run(tmp_path, "r", "es", "Hopper-v5", 0, [0, 10], [1.0, 2.0])
    (run_dir / missing).unlink()
    with pytest.raises(RunFileError, match=missing) as err:
        load_runs([run_dir])
    assert str(run_dir / missing) in str(err.value)


def test_load_runs_names_missing_column(tmp_path):
    run_dir = write_run(tmp_path, "r", "es", "Hopper-v5", 0, [0, 10], [1.0, 2.0])
    progress = pd.read_csv(run_dir / "progress.csv").drop(columns=["eval_return_mean"])
    progress.to_csv(run_dir / "progress.csv", index=False)
    with pytest.raises(ValueError, match="progress.csv lacks column.*eval_return_mean"):
        load_runs([run_dir])


def test_load_runs_names_missing_key(tmp_path):
    run_dir = write_run(tmp_path, "r", "es", "Hopper-v5", 0, [0, 10], [1.0, 2.0])
    meta = json.loads((run_dir / "run.json").read_text())
    del meta["seed"]
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="run.json lacks key.*seed"):
        load_runs([run_dir])


def test_load_runs_rejects_duplicate_and_empty(tmp_path):
    a = write_run(tmp_path, "a", "es", "Hopper-v5", 1, [0, 10], [1.0, 2.0])
    b = write_run(tmp_path, "b", "es", "Hopper-v5", 1, [0, 12], [1.0, 3.0])
    with pytest.raises(ValueError, match="seed=1"):
        load_runs([a, b])
    with pytest.raises(ValueError, match="no run directories"):
        load_runs([])


# ---------------------------------------------------------------- resampling

SEED_A = ([0, 10, 20, 40], [1.0, 2.0, 3.0, 4.0])
SEED_B = ([0, 30, 60, 100], [10.0, 20.0, 30.0, 40.0])


def test_resample_step_interpolation_on_given_grid():
    df = curves_frame({("es", "E-v5", 0): SEED_A, ("es", "E-v5", 1): SEED_B})
    out = resample_curves(df, grid=[0, 5, 10, 15, 39, 40, 41, 100])
    assert list(out.columns) == ["algo", "env", "seed", "x", "y"]
    a = out[out["seed"] == 0]
    # hand-computed: last value at or before each grid point; 41 and 100 are past A's end
    assert a["x"].tolist() == [0, 5, 10, 15, 39, 40]
    assert a["y"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 4.0]
    b = out[out["seed"] == 1]
    assert b["x"].tolist() == [0, 5, 10, 15, 39, 40, 41, 100]
    assert b["y"].tolist() == [10.0, 10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 40.0]


def test_resample_takes_nothing_before_first_x_or_where_y_is_nan():
    df = curves_frame({("es", "E-v5", 0): ([10, 20], [1.0, 2.0])})
    assert resample_curves(df, grid=[5, 10, 25])["x"].tolist() == [10]
    df = curves_frame({("es", "E-v5", 0): ([0, 10, 20], [np.nan, 1.0, 2.0])})
    out = resample_curves(df, grid=[0, 5, 15])
    assert out["x"].tolist() == [15] and out["y"].tolist() == [1.0]


def test_resample_default_grid_is_log_spaced_per_group_and_drops_past_end():
    df = curves_frame({("es", "E-v5", 0): SEED_A, ("es", "E-v5", 1): SEED_B,
                       ("es", "F-v5", 0): ([0, 1000, 5000], [0.0, 1.0, 2.0])})
    out = resample_curves(df, points=7)
    e_b = out[(out["env"] == "E-v5") & (out["seed"] == 1)]["x"].to_numpy()
    assert len(e_b) == 7
    assert e_b[0] == pytest.approx(10) and e_b[-1] == pytest.approx(100)  # min positive, max end
    assert np.allclose(np.diff(np.log(e_b)), np.log(10) / 6)
    e_a = out[(out["env"] == "E-v5") & (out["seed"] == 0)]
    assert e_a["x"].max() <= 40 and e_a["x"].tolist() == [g for g in e_b if g <= 40]
    assert e_a["y"].tolist() == [step_value(*SEED_A, g) for g in e_a["x"]]
    f = out[out["env"] == "F-v5"]["x"].to_numpy()
    assert f[0] == pytest.approx(1000) and f[-1] == pytest.approx(5000) and len(f) == 7


def test_mean_curve_only_on_common_coverage():
    df = curves_frame({("es", "E-v5", 0): SEED_A, ("es", "E-v5", 1): SEED_B})
    grid = [0, 5, 10, 15, 39, 40, 41, 100]
    mean = mean_curve(resample_curves(df, grid=grid))
    assert list(mean.columns) == ["algo", "env", "x", "mean", "std", "n_seeds"]
    assert mean["x"].tolist() == [g for g in grid if g <= 40]
    assert (mean["n_seeds"] == 2).all()
    row = mean[mean["x"] == 39].iloc[0]
    assert row["mean"] == pytest.approx((3.0 + 20.0) / 2)
    assert row["std"] == pytest.approx(abs(20.0 - 3.0) / np.sqrt(2))  # ddof=1 over 2 seeds


def test_mean_curve_single_seed_has_zero_std():
    mean = mean_curve(resample_curves(curves_frame({("es", "E-v5", 0): SEED_A}), grid=[10, 20]))
    assert mean["mean"].tolist() == [2.0, 3.0]
    assert mean["std"].tolist() == [0.0, 0.0] and mean["n_seeds"].tolist() == [1, 1]


# ---------------------------------------------------------------- summary

@pytest.fixture
def summary_runs(tmp_path):
    root = tmp_path / "results"
    return [
        write_run(root, "es/hc/0", "es", "HalfCheetah-v5", 0, [0, 500, 1000],
                  [-50.0, 20.0, 100.0], wall_time_s=30.0),
        write_run(root, "es/hc/1", "es", "HalfCheetah-v5", 1, [0, 800, 1600, 2400, 3000],
                  [-30.0, 0.0, 50.0, 200.0, 300.0], wall_time_s=50.0),
        write_run(root, "es/foo/0", "es", "Foo-v1", 0, [0, 7], [1.0, 8.0], wall_time_s=2.0),
        write_run(root, "trpo/hc/5", "trpo", "HalfCheetah-v5", 5, [0, 9000], [0.0, 9999.0]),
    ]


def test_summarize_es_mujoco_numbers(summary_runs):
    table = summarize_es_mujoco(load_runs(summary_runs), pd.read_csv(REFERENCE_CSV)).set_index("env")
    assert list(table.index) == ["Foo-v1", "HalfCheetah-v5"]
    hc = table.loc["HalfCheetah-v5"]
    assert hc["seeds"] == 2
    assert hc["iterations"] == pytest.approx((2 + 4) / 2)
    assert hc["timesteps"] == pytest.approx((1000 + 3000) / 2)
    assert hc["wall_time_s"] == pytest.approx((30.0 + 50.0) / 2)
    assert hc["initial_eval_return"] == pytest.approx((-50.0 - 30.0) / 2)
    assert hc["final_eval_return_mean"] == pytest.approx(200.0)
    assert hc["final_eval_return_std"] == pytest.approx(np.std([100.0, 300.0], ddof=1))
    assert hc["trpo_final_score_paper"] == pytest.approx(TRPO_HALFCHEETAH_PAPER)
    foo = table.loc["Foo-v1"]
    assert foo["seeds"] == 1 and foo["final_eval_return_std"] == 0.0
    assert np.isnan(foo["trpo_final_score_paper"])


def test_summarize_requires_initial_row(tmp_path):
    df = curves_frame({("es", "E-v5", 0): SEED_A})
    df = df.assign(episodes=0, wall_time_s=0.0)[df["iteration"] > 0]
    with pytest.raises(ValueError, match="iteration-0"):
        summarize_es_mujoco(df, pd.read_csv(REFERENCE_CSV))


def test_write_summary_writes_csv_and_markdown(summary_runs, tmp_path):
    out_dir = tmp_path / "paper" / "tables"
    table = write_summary(summary_runs, REFERENCE_CSV, [out_dir / "es.csv", out_dir / "es.md"])
    assert sorted(p.name for p in out_dir.iterdir()) == ["es.csv", "es.md"]  # no temp files left
    written = pd.read_csv(out_dir / "es.csv")
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    hc = written.set_index("env").loc["HalfCheetah-v5"]
    assert hc["final_eval_return_mean"] == pytest.approx(200.0)
    md = (out_dir / "es.md").read_text(encoding="utf-8")
    caption, blank, header = md.splitlines()[:3]
    assert "mean ± sd" in caption and "Table 3" in caption and "-v5" in caption
    assert blank == "" and "final eval return (mean ± sd)" in header
    expected = f"{np.mean([100.0, 300.0]):.1f} ± {np.std([100.0, 300.0], ddof=1):.1f}"
    assert expected in md
    assert f"{TRPO_HALFCHEETAH_PAPER:.2f}" in md and "n/a" in md


# ---------------------------------------------------------------- figures

def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_learning_curves_png_two_envs_two_algos(tmp_path):
    root = tmp_path / "results"
    dirs = [write_run(root, f"es/{env}/{seed}", "es", env, seed,
                      [0, 100 + seed, 1000, 10000 + 50 * seed], [0.0, 1.0 + seed, 5.0, 9.0])
            for env in ("Hopper-v5", "Swimmer-v5") for seed in range(3)]
    dirs.append(write_run(root, "trpo/Hopper-v5/0", "trpo", "Hopper-v5", 0,
                          [0, 2048, 4096], [0.0, 3.0, 4.0]))
    out = tmp_path / "figures" / "curves.png"
    plot_learning_curves(dirs, [out])
    assert out.stat().st_size > 10_000
    assert png_size(out) == (2 * 4.5 * 150, 3.4 * 150)  # two panels in a row at 150 dpi
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]


def test_learning_curves_pdf_single_env_single_seed(tmp_path):
    run_dir = write_run(tmp_path, "r", "es", "Hopper-v5", 0, [0, 10, 30], [0.0, 1.0, 2.0])
    out = tmp_path / "curves.pdf"
    plot_learning_curves([run_dir], [out], x="iteration")
    assert out.read_bytes()[:5] == b"%PDF-" and out.stat().st_size > 1_000


def test_learning_curves_failed_save_leaves_no_file(tmp_path):
    run_dir = write_run(tmp_path, "r", "es", "Hopper-v5", 0, [0, 10, 30], [0.0, 1.0, 2.0])
    out = tmp_path / "figs" / "curves.notaformat"
    out.parent.mkdir()
    with pytest.raises(ValueError):
        plot_learning_curves([run_dir], [out])
    assert list(out.parent.iterdir()) == []

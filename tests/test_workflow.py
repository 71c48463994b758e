"""A smoke run of the whole workflow (config/smoke.yaml) in a temporary directory."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake

SMOKE = REPO / "config" / "smoke.yaml"


def test_smoke_workflow_builds_table_and_figure(smoke_run):
    tmp_path = smoke_run
    config = yaml.safe_load(SMOKE.read_text())
    results, tables, figures = (tmp_path / config["results_dir"], tmp_path / config["paper_dir"] / "tables",
                                tmp_path / config["paper_dir"] / "figures")
    assert not (tmp_path / "paper").exists()  # paper/ is the default grid's
    runs = sorted((results / "es").glob("*/seed*/run.json"))
    assert len(runs) == 4  # 2 MuJoCo envs x 2 seeds
    assert len(list((results / "trpo" / "paper2017").glob("*/seed*/run.json"))) == 4  # the grid's one preset
    table = pd.read_csv(tables / "es_mujoco_summary.csv").set_index("env")
    markdown = (tables / "es_mujoco_summary.md").read_text()
    for env in ("InvertedPendulum-v5", "Swimmer-v5"):
        finals = [json.loads(p.read_text())["final_eval_return_mean"] for p in runs if p.parts[-3] == env]
        assert table.loc[env, "final_eval_return_mean"] == pd.Series(finals).mean()
        assert table.loc[env, "seeds"] == 2
        assert f"{pd.Series(finals).mean():.1f}" in markdown
    assert table.loc["InvertedPendulum-v5", "trpo_final_score_paper"] == 1000.0
    for figure in ("es_mujoco_curves.png", "es_vs_trpo.png"):
        png = (figures / figure).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (figures / "es_vs_trpo.pdf").read_bytes()[:4] == b"%PDF"
    table3 = pd.read_csv(tables / "table3.csv")
    assert sorted(set(table3["env"])) == ["InvertedPendulum-v5", "Swimmer-v5"]
    assert sorted(set(table3["progress_pct"])) == [25, 50, 75, 100]
    for name in ("table1", "table3"):
        assert "InvertedPendulum-v5" in (tables / f"{name}.md").read_text()
        assert "\\toprule" in (tables / f"{name}.tex").read_text()
    # Atari: Pong at frame_skip 1 and 4, one A2C run; Table 2 holds Pong (frame_skip 4 run and A2C).
    atari_runs = sorted((results / "es" / "Pong").glob("frameskip*/seed0/run.json"))
    assert [p.parts[-3] for p in atari_runs] == ["frameskip1", "frameskip4"]
    assert [json.loads(p.read_text())["config"]["frame_skip"] for p in atari_runs] == [1, 4]
    atari = pd.read_csv(tables / "atari.csv")
    assert list(atari["game"]) == ["Pong"]
    pong_fs4 = json.loads(atari_runs[1].read_text())["final_eval_return_mean"]
    assert atari.loc[0, "es_final_mean"] == pong_fs4
    assert atari.loc[0, "a2c_seeds"] == 1 and pd.notna(atari.loc[0, "a2c_final_mean"])
    # Scaling: InvertedPendulum with 1 and 2 workers, identical learning, the table and Figure 1.
    scaling = sorted((results / "scaling" / "InvertedPendulum-v5").glob("workers*/seed0/progress.csv"))
    assert len(scaling) == 2
    curves = [pd.read_csv(p)["eval_return_mean"] for p in scaling]
    pd.testing.assert_series_equal(curves[0], curves[1])
    # Our rows: one per worker count, each from its one repeat, reached iff its curve reached the target.
    ours = pd.read_csv(tables / "scaling.csv").query("source == 'ours'")
    assert list(ours["cpu_cores"]) == [1, 2] and list(ours["repeats"]) == [1, 1]
    assert set(ours["env"]) == {"InvertedPendulum-v5"} and set(ours["target_return"]) == {20}
    for (_, row), path in zip(ours.iterrows(), scaling):
        progress = pd.read_csv(path).sort_values("iteration")
        at_target = progress[progress["eval_return_mean"] >= 20]
        assert row["reached"] == int(len(at_target) > 0)
        minutes = at_target["wall_time_s"].iloc[0] / 60 if len(at_target) else float("nan")
        assert row["median_minutes"] == pytest.approx(minutes, nan_ok=True, rel=1e-6)
    for figure in ("fig1_scaling", "fig2_frameskip"):
        assert (figures / f"{figure}.pdf").read_bytes()[:4] == b"%PDF"
    # The claims report: a learning line per ES env and game (too few iterations in this grid), then
    # one row per claim of the paper, each with a verdict; a clip of every ES policy.
    claims = pd.read_csv(tmp_path / config["paper_dir"] / "claims.csv")
    learning = claims[claims["claim"].str.startswith("Learning")]
    assert list(learning["claim"].str.split().str[-1]) == ["InvertedPendulum-v5", "Pong", "Swimmer-v5"]
    assert (learning["verdict"] == "too few iterations to tell").all(), learning
    assert len(claims) == 3 + 5 and claims["verdict"].iloc[3:].str.match(
        r"reproduced|same direction|not reproduced|not testable here").all(), claims
    report = (tmp_path / config["paper_dir"] / "claims.md").read_text()
    assert all(claim in report for claim in claims["claim"])
    for clip in ("mujoco/InvertedPendulum-v5.gif", "mujoco/Swimmer-v5.gif", "atari/Pong.gif"):
        assert (tmp_path / config["paper_dir"] / "clips" / clip).read_bytes()[:6] == b"GIF89a"
    # Nothing left to do: a second invocation plans no job.
    again = run_snakemake("--cores", "2", "--configfile", SMOKE, "-n", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_smoke_report_bundles_outputs_with_the_grids_presets(smoke_run):
    """`snakemake --report report.html`, as the README gives it: one HTML file whose captions name the
    grid's TRPO presets (here the smoke grid's one)."""
    res = run_snakemake("--configfile", SMOKE, "--report", "report.html", cwd=smoke_run)
    assert res.returncode == 0, res.stderr[-3000:]
    html = (smoke_run / "report.html").read_text()
    assert "TRPO presets of this grid: paper2017." in html
    assert "claims.md" in html and "fig1_scaling.png" in html


def test_paper_grid_plans_the_whole_paper(tmp_path):
    res = run_snakemake("-n", "--configfile", REPO / "config" / "paper.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    stats = (res.stdout + res.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M))
    assert counts["es_train"] == "36" and counts["trpo_train"] == "72"  # 6 MuJoCo envs x 6 seeds (x 2 presets)
    assert counts["es_atari"] == "54"  # 51 games at frame_skip 4, Pong also at 1, 2, 3
    assert counts["a2c_train"] == "51"
    assert counts["scaling_run"] == "49"  # 7 core counts x 7 repeats
    assert {k for k in counts if k not in ("es_train", "trpo_train", "es_atari", "a2c_train", "scaling_run",
                                           "total")} == {
        "es_mujoco_summary", "es_mujoco_curves", "mujoco_tables", "es_vs_trpo_curves", "atari_table",
        "fig2_frameskip", "fig1_scaling", "claims", "clip_mujoco", "clip_atari", "all"}
    assert counts["clip_mujoco"] == "6" and counts["clip_atari"] == "51"  # one clip per ES env and game


def test_workstation_grid_plans_both_presets(tmp_path):
    res = run_snakemake("-n", "--configfile", REPO / "config" / "workstation.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    stats = (res.stdout + res.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M))
    assert counts["es_train"] == "24" and counts["trpo_train"] == "48"  # 4 envs x 6 seeds (x 2 presets)
    for preset in ("paper2017", "zoo"):
        assert f"results/workstation/trpo/{preset}/HalfCheetah-v5/seed5/run.json" in res.stdout + res.stderr

"""A smoke run of the whole workflow (config/smoke.yaml) in a temporary directory."""

import json

import pandas as pd

from conftest import REPO, run_snakemake


def test_smoke_workflow_builds_table_and_figure(tmp_path):
    res = run_snakemake("--cores", "2", "--configfile", REPO / "config" / "smoke.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted((tmp_path / "results" / "es").glob("*/seed*/run.json"))
    assert len(runs) == 4  # 2 envs x 2 seeds
    table = pd.read_csv(tmp_path / "paper" / "tables" / "es_mujoco_summary.csv").set_index("env")
    markdown = (tmp_path / "paper" / "tables" / "es_mujoco_summary.md").read_text()
    for env in ("InvertedPendulum-v5", "Swimmer-v5"):
        finals = [json.loads(p.read_text())["final_eval_return_mean"] for p in runs if p.parts[-3] == env]
        assert table.loc[env, "final_eval_return_mean"] == pd.Series(finals).mean()
        assert table.loc[env, "seeds"] == 2
        assert f"{pd.Series(finals).mean():.1f}" in markdown
    assert table.loc["InvertedPendulum-v5", "trpo_final_score_paper"] == 1000.0
    png = (tmp_path / "paper" / "figures" / "es_mujoco_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Nothing left to do: a second invocation plans no job.
    again = run_snakemake("--cores", "2", "--configfile", REPO / "config" / "smoke.yaml", "-n", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

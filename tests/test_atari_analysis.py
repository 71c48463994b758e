"""Tests of esrepro.analysis.atari_games (paper Table 2 and Figure 2) on synthetic run directories
written with the package's own writers, and on the published reference numbers."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esrepro.analysis.atari_games import (
    ATARI_COLUMNS,
    META_COLUMNS,
    atari_table,
    compare_scores,
    count_better_worse,
    plot_frameskip,
    write_atari_table,
)
from esrepro.analysis.runs import load_runs
from esrepro.atomic import write_json
from esrepro.envs.atari import game_name
from esrepro.progress import write_progress

from conftest import run_cli

REFERENCE = Path(__file__).resolve().parents[1] / "paper" / "reference"
ES_A3C_CSV = REFERENCE / "atari_es_vs_a3c.csv"
A2C_CSV = REFERENCE / "atari_hyperneat_a2c.csv"


def write_run(root, algo, env, seed, evals, frame_skip=None, frames=False):
    """A run directory: one progress row per iteration (1000 agent steps and 60 s each) and
    run.json; ES runs get config.frame_skip and 2 workers, A2C runs a frames column (4 per step)."""
    run_dir = Path(root) / f"{algo}_{game_name(env)}_fs{frame_skip}_seed{seed}"
    rows = [{"iteration": i, "timesteps": 1000 * i, "episodes": 10 * i, "wall_time_s": 60.0 * i,
             "eval_return_mean": float(e), "frames": 4000 * i} for i, e in enumerate(evals)]
    write_progress(run_dir / "progress.csv", rows, extra_columns=["frames"] if frames else [])
    config = {"eval_episodes": 10} | ({} if frame_skip is None else {"frame_skip": frame_skip})
    meta = {"workers": 2} if algo == "es" else {}
    write_json(run_dir / "run.json", {"algo": algo, "env": env, "seed": seed, "config": config,
                                      "wall_time_s": 60.0 * len(evals), **meta})
    return run_dir


def md_cells(md, game):
    """The stripped cells of `game`'s row of a Markdown table."""
    line = next(line for line in md.splitlines() if line.startswith(f"| {game} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.fixture
def run_dirs(tmp_path):
    """Pong: ES frame-skip 4 (2 seeds, finals 20 and 21 after a higher peak), frame-skip 2 (one
    seed, final -21, must stay out of Table 2), A2C (final 18). Breakout: ES (5, below A3C's 551.6),
    no A2C. Enduro: ES ending exactly at A3C's -82.2 (a tie). Freeway: only frame-skip 2."""
    return [
        write_run(tmp_path, "es", "ALE/Pong-v5", 0, [-21, 0, 21, 20], frame_skip=4),
        write_run(tmp_path, "es", "ALE/Pong-v5", 1, [-21, 5, 21], frame_skip=4),
        write_run(tmp_path, "es", "ALE/Pong-v5", 0, [-21, -21], frame_skip=2),
        write_run(tmp_path, "a2c", "ALE/Pong-v5", 0, [-21, 18], frames=True),
        write_run(tmp_path, "es", "ALE/Breakout-v5", 0, [1, 5], frame_skip=4),
        write_run(tmp_path, "es", "ALE/Enduro-v5", 0, [0, -82.2], frame_skip=4),
        write_run(tmp_path, "es", "ALE/Freeway-v5", 0, [0, 30], frame_skip=2),
    ]


@pytest.fixture
def table(run_dirs):
    return atari_table(load_runs(run_dirs, META_COLUMNS), pd.read_csv(ES_A3C_CSV),
                       pd.read_csv(A2C_CSV)).set_index("game")


# ---------------------------------------------------------------- counting

def test_published_es_beats_a3c_on_23_and_loses_on_28_of_51():
    reference = pd.read_csv(ES_A3C_CSV)
    counts = count_better_worse(reference["es_ff_1hour"], reference["a3c_ff_1day"])
    assert counts == {"better": 23, "worse": 28, "ties": 0, "games": 51}


def test_counts_report_ties_and_skip_missing():
    scores, baseline = [3.0, 1.0, 2.0, np.nan, 5.0, -4.0], [1.0, 2.0, 2.0, 1.0, np.nan, -4.5]
    assert list(compare_scores(scores, baseline)) == ["better", "worse", "tie", None, None,
                                                      "better"]
    assert count_better_worse(scores, baseline) == {"better": 2, "worse": 1, "ties": 1,
                                                    "games": 4}
    with pytest.raises(ValueError, match="same length"):
        compare_scores([1.0, 2.0], [1.0])


# ---------------------------------------------------------------- Table 2

def test_table_final_scores_and_published_columns(table):
    assert list(table.reset_index().columns) == list(ATARI_COLUMNS)
    assert table.index.tolist() == ["Breakout", "Enduro", "Pong"]  # Freeway: frame-skip 2 only
    pong = table.loc["Pong"]
    # the final row counts, not the peak; the frame-skip 2 run (-21) is left out
    assert pong["es_seeds"] == 2 and pong["es_final_mean"] == 20.5
    assert pong["es_final_std"] == pytest.approx(math.sqrt(0.5))
    assert pong["es_frames"] == 4 * (3000 + 2000) / 2  # timesteps * frame_skip, mean over runs
    assert pong["es_wall_time_h"] == pytest.approx((180 + 120) / 2 / 3600)
    assert pong["es_workers"] == 2
    assert (pong["dqn_paper"], pong["a3c_ff_1day_paper"], pong["es_ff_1hour_paper"],
            pong["a2c_ff_320m_paper"]) == (16.2, 11.4, 21.0, 20.8)


def test_table_ours_and_published_es_vs_a3c(table):
    assert table["es_vs_a3c"].to_dict() == {"Breakout": "worse", "Enduro": "tie",
                                            "Pong": "better"}
    assert table["es_paper_vs_a3c"].to_dict() == {"Breakout": "worse", "Enduro": "better",
                                                  "Pong": "better"}


def test_table_a2c_column_present_or_blank(table):
    pong, breakout = table.loc["Pong"], table.loc["Breakout"]
    assert pong["a2c_seeds"] == 1 and pong["a2c_final_mean"] == 18.0
    assert pong["a2c_frames"] == 4000  # from its frames column
    assert np.isnan(breakout["a2c_seeds"]) and np.isnan(breakout["a2c_final_mean"])


def test_frame_skip_variants_load_side_by_side_but_not_twice(tmp_path):
    dirs = [write_run(tmp_path / str(skip), "es", "ALE/Pong-v5", 0, [0, 1], frame_skip=skip)
            for skip in (2, 4)]
    assert sorted(load_runs(dirs, META_COLUMNS)["frame_skip"].unique()) == [2, 4]
    dirs.append(write_run(tmp_path / "again", "es", "ALE/Pong-v5", 0, [0, 2], frame_skip=4))
    with pytest.raises(ValueError, match="seed=0, frame_skip=4, workers=2"):
        load_runs(dirs, META_COLUMNS)


def test_table_rejects_es_run_without_frame_skip(tmp_path):
    run_dir = write_run(tmp_path, "es", "ALE/Pong-v5", 0, [0, 1])
    with pytest.raises(ValueError, match="env=ALE/Pong-v5 seed=0.*config.frame_skip"):
        atari_table(load_runs([run_dir], META_COLUMNS), pd.read_csv(ES_A3C_CSV),
                    pd.read_csv(A2C_CSV))


def test_table_needs_frame_skip_4_or_a2c_runs(tmp_path):
    run_dir = write_run(tmp_path, "es", "ALE/Pong-v5", 0, [0, 1], frame_skip=2)
    with pytest.raises(ValueError, match="frame_skip 4"):
        atari_table(load_runs([run_dir], META_COLUMNS), pd.read_csv(ES_A3C_CSV),
                    pd.read_csv(A2C_CSV))


def test_write_atari_table_files_and_caption(run_dirs, tmp_path):
    prefix = tmp_path / "tables" / "atari"
    written = write_atari_table(run_dirs, ES_A3C_CSV, A2C_CSV, [prefix.with_suffix(s) for s in (".csv", ".md", ".tex")])
    csv = pd.read_csv(prefix.with_suffix(".csv"))
    assert csv["game"].tolist() == written["game"].tolist() == ["Breakout", "Enduro", "Pong"]
    md = prefix.with_suffix(".md").read_text()
    for phrase in ("human starts", "30 random no-ops", "1 billion frames",
                   "ES (ours) 1 better, 1 worse, 1 ties of 3 games",
                   "2 better, 1 worse, 0 ties of these 3 games",
                   "23 better, 28 worse, 0 ties of all 51 games"):
        assert phrase in md
    assert md_cells(md, "Pong") == ["Pong", "20.5 ± 0.7 (n=2)", "18.0 ± 0.0 (n=1)", "16.2",
                                    "11.4", "21.0", "20.8", "better"]
    assert md_cells(md, "Breakout")[2] == ""  # no A2C run: blank
    tex = prefix.with_suffix(".tex").read_text()
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "tab:table2" in tex


def test_unverified_a2c_sign_marked(tmp_path):
    run_dir = write_run(tmp_path, "es", "ALE/DoubleDunk-v5", 0, [0, 1], frame_skip=4)
    write_atari_table([run_dir], ES_A3C_CSV, A2C_CSV, [tmp_path / "t.md"])
    assert md_cells((tmp_path / "t.md").read_text(), "DoubleDunk")[6] == "3.2?"


# ---------------------------------------------------------------- Figure 2

def test_frameskip_figure_lines_coverage_and_pong_axis(tmp_path):
    dirs = [write_run(tmp_path, "es", "ALE/Pong-v5", seed, evals, frame_skip=skip)
            for skip, seed, evals in ((1, 0, [-21, -10, 0, 10]), (1, 1, [-21, -5, 5]),
                                      (3, 0, [-20, 0, 21]), (4, 0, [-21, -21, -20]))]
    dirs.append(write_run(tmp_path, "es", "ALE/Breakout-v5", 0, [0, 500], frame_skip=1))
    png, pdf = tmp_path / "fig" / "fig2.png", tmp_path / "fig" / "fig2.pdf"
    fig = plot_frameskip(dirs, "Pong", [png, pdf])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000
    ax = fig.axes[0]
    assert ax.get_ylim() == (-21.0, 21.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1", "3", "4"]
    mean_lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    # frame-skip 1: mean of both seeds, only where both exist (iterations 0-2)
    assert list(mean_lines[0].get_xdata()) == [0, 1, 2]
    assert list(mean_lines[0].get_ydata()) == [-21.0, -7.5, 2.5]


def test_frameskip_figure_other_game_uses_data_range(tmp_path):
    run_dir = write_run(tmp_path, "es", "ALE/Breakout-v5", 0, [0, 500], frame_skip=1)
    ax = plot_frameskip([run_dir], "Breakout", [tmp_path / "b.png"]).axes[0]
    low, high = ax.get_ylim()
    assert low < 0 < 500 < high < 1000


def test_frameskip_figure_unknown_game_lists_games(tmp_path):
    run_dir = write_run(tmp_path, "es", "ALE/Breakout-v5", 0, [0, 5], frame_skip=1)
    with pytest.raises(ValueError, match=r"game='Pong'.*\['Breakout'\]"):
        plot_frameskip([run_dir], "Pong", [tmp_path / "x.png"])
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- CLI

def test_cli_atari_table_and_frameskip_figure(run_dirs, tmp_path):
    out = tmp_path / "paper" / "tables" / "atari"
    done = run_cli("atari-table", "--runs", *run_dirs, "--reference-es-a3c", ES_A3C_CSV,
                   "--reference-a2c", A2C_CSV, "--out", *(out.with_suffix(s) for s in (".csv", ".md", ".tex")))
    assert done.returncode == 0, done.stderr
    assert all(out.with_suffix(s).stat().st_size > 0 for s in (".csv", ".md", ".tex"))
    figures = [tmp_path / "paper" / "figures" / f"fig2_frameskip.{s}" for s in ("png", "pdf")]
    done = run_cli("frameskip-figure", "--runs", *run_dirs, "--game", "Pong", "--out", *figures)
    assert done.returncode == 0, done.stderr
    assert all(f.stat().st_size > 1_000 for f in figures)

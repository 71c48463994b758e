"""Every run file and reference table the aggregation commands read is checked on read: a missing or
damaged one ends the command with exit code 2 and one line ``esrepro: error: ...`` naming the file,
no traceback, and no output file. Run directories are written with the package's own writers, then
damaged."""

import json
from pathlib import Path

import pytest

from esrepro.atomic import write_json
from esrepro.cli import main
from esrepro.progress import write_progress

from conftest import run_cli

REFERENCE = Path(__file__).resolve().parents[1] / "paper" / "reference"


def write_run(root, algo, env, seed, evals, config=None, **meta):
    """A run directory: one progress row per evaluation (100 timesteps and 1.5 s apart) and run.json."""
    run_dir = Path(root) / algo / env.replace("/", "_") / f"seed{seed}"
    rows = [{"iteration": i, "timesteps": 100 * i, "episodes": 2 * i, "wall_time_s": 1.5 * i,
             "eval_return_mean": float(e)} for i, e in enumerate(evals)]
    write_progress(run_dir / "progress.csv", rows)
    write_json(run_dir / "run.json", {"algo": algo, "env": env, "seed": seed, "wall_time_s": 1.5 * len(evals),
                                      "config": config or {}, **meta})
    return run_dir


@pytest.fixture
def mujoco_runs(tmp_path):
    """ES and TRPO on Swimmer, one seed each: the runs of Tables 1 and 3."""
    return [write_run(tmp_path / "results", "es", "Swimmer-v5", 0, [0, 10, 30, 50]),
            write_run(tmp_path / "results", "trpo", "Swimmer-v5", 0, [0, 20, 40])]


def tables_args(runs, out):
    return ["tables", "--runs", *map(str, runs), "--paper-table1", str(REFERENCE / "table1_mujoco_ratios.csv"),
            "--paper-table3", str(REFERENCE / "table3_mujoco_detail.csv"),
            "--table1", *(str(out / f"table1.{s}") for s in ("csv", "md", "tex")),
            "--table3", *(str(out / f"table3.{s}") for s in ("csv", "md", "tex"))]


def one_error_line(capsys, argv) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one stderr line, ``esrepro: error: ...``."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("esrepro: error: "), err
    return lines[0]


def replace_text(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def edit_json(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


# (file, damage, what the message says); each damages the ES run of `mujoco_runs`
DAMAGE = {
    "run.json missing": ("run.json", lambda p: p.unlink(), "is missing"),
    "run.json empty": ("run.json", lambda p: p.write_text(""), "is empty"),
    "run.json truncated": ("run.json", lambda p: p.write_text(p.read_text()[:40]),
                           "is not valid JSON (truncated?): Unterminated string"),
    "run.json not an object": ("run.json", lambda p: p.write_text("[1, 2]\n"), "holds a JSON list, not an object"),
    "run.json lacks a key": ("run.json", lambda p: edit_json(p, lambda m: m.pop("seed")), "lacks key(s) seed"),
    "run.json key of the wrong type": ("run.json", lambda p: edit_json(p, lambda m: m.update(seed="0")),
                                       "has 'seed' = \"0\", not an integer"),
    "progress.csv missing": ("progress.csv", lambda p: p.unlink(), "is missing"),
    "progress.csv empty": ("progress.csv", lambda p: p.write_text(""), "is empty"),
    "progress.csv not text": ("progress.csv", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"),
                              "is not UTF-8 text"),
    "progress.csv truncated": ("progress.csv", lambda p: p.write_text(p.read_text()[:-30]),
                               "ends in the middle of a line (truncated?)"),
    "progress.csv row with missing fields": ("progress.csv", lambda p: replace_text(p, "\n2,", "\n2\n"),
                                             "row 4 has 1 field(s), the header 10 (truncated?)"),
    "progress.csv header only": ("progress.csv", lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"),
                                 "has no rows"),
    "progress.csv lacks a column": ("progress.csv", lambda p: replace_text(p, "eval_return_mean,", "eval,"),
                                    "lacks column(s) eval_return_mean"),
    "progress.csv non-numeric value": ("progress.csv", lambda p: replace_text(p, "\n1,100,", "\n1,lots,"),
                                       "column timesteps row 3: 'lots' is not a finite number"),
    "progress.csv infinite value": ("progress.csv", lambda p: replace_text(p, ",30.0,", ",inf,"),
                                    "column eval_return_mean row 4: 'inf' is not a finite number"),
    "progress.csv counter missing in a row": ("progress.csv", lambda p: replace_text(p, "\n1,100,", "\n1,,"),
                                              "column timesteps row 3: '' is not a count (a number >= 0 in every row)"),
    "progress.csv counter decreasing": ("progress.csv", lambda p: replace_text(p, ",4.5,", ",0.5,"),
                                        "column wall_time_s decreases at iteration 3 (a cumulative counter)"),
    "progress.csv iteration repeated": ("progress.csv", lambda p: replace_text(p, "\n2,", "\n1,"),
                                        "repeats iteration 1"),
    "progress.csv without evaluations": ("progress.csv", lambda p: p.write_text("\n".join(
        ",".join(line.split(",")[:7] + ["", *line.split(",")[8:]]) if i else line
        for i, line in enumerate(p.read_text().splitlines())) + "\n"), "has no eval_return_mean in any row"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_run_file(kind, mujoco_runs, tmp_path, capsys):
    name, damage, problem = DAMAGE[kind]
    path = mujoco_runs[0] / name
    damage(path)
    out = tmp_path / "paper" / "tables"
    line = one_error_line(capsys, tables_args(mujoco_runs, out))
    assert line.startswith(f"esrepro: error: {path} {problem}"), line
    assert not out.exists()  # nothing written, not even the directory


def test_run_directory_without_run_files(mujoco_runs, tmp_path, capsys):
    for name in ("progress.csv", "run.json"):
        (mujoco_runs[1] / name).unlink()
    line = one_error_line(capsys, tables_args(mujoco_runs, tmp_path / "out"))
    assert line == f"esrepro: error: run directory {mujoco_runs[1]} has no run files (progress.csv, run.json)"


def test_run_directory_that_does_not_exist(mujoco_runs, tmp_path, capsys):
    missing = tmp_path / "results" / "es" / "Hopper-v5" / "seed0"
    line = one_error_line(capsys, tables_args([*mujoco_runs, missing], tmp_path / "out"))
    assert line == f"esrepro: error: run directory {missing} does not exist"


def test_same_run_twice_names_both_directories(mujoco_runs, tmp_path, capsys):
    again = write_run(tmp_path / "again", "es", "Swimmer-v5", 0, [0, 5])
    line = one_error_line(capsys, tables_args([*mujoco_runs, again], tmp_path / "out"))
    assert f"run directories {mujoco_runs[0]} and {again} hold the same run" in line
    assert "algo=es, env=Swimmer-v5, seed=0" in line


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.unlink(), "is missing"),
    (lambda p: p.write_text(p.read_text()[:-10]), "ends in the middle of a line (truncated?)"),
    (lambda p: replace_text(p, "trpo_score", "score"), "lacks column(s) trpo_score"),
    (lambda p: replace_text(p, "-1.35", "minus"), "column trpo_score row 2: 'minus' is not a finite number"),
], ids=["missing", "truncated", "lacks a column", "non-numeric"])
def test_damaged_reference_table(damage, problem, mujoco_runs, tmp_path, capsys):
    reference = tmp_path / "table3_mujoco_detail.csv"
    reference.write_text((REFERENCE / "table3_mujoco_detail.csv").read_text())
    damage(reference)
    argv = tables_args(mujoco_runs, tmp_path / "out")
    argv[argv.index("--paper-table3") + 1] = str(reference)
    assert one_error_line(capsys, argv) == f"esrepro: error: {reference} {problem}"


def test_unknown_output_suffix_names_the_path(mujoco_runs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = tables_args(mujoco_runs, out)
    argv[argv.index("--table3") + 2] = str(out / "table3.txt")
    line = one_error_line(capsys, argv)
    assert line == (f"esrepro: error: output {out / 'table3.txt'}: unknown table format '.txt' "
                    f"(known: .csv, .md, .tex)")
    assert not out.exists()


def test_es_atari_run_without_frame_skip(tmp_path, capsys):
    run = write_run(tmp_path, "es", "ALE/Pong-v5", 0, [-21, -20], config={"eval_episodes": 2}, workers=1)
    line = one_error_line(capsys, [
        "atari-table", "--runs", run, "--reference-es-a3c", REFERENCE / "atari_es_vs_a3c.csv",
        "--reference-a2c", REFERENCE / "atari_hyperneat_a2c.csv", "--out", tmp_path / "atari.csv"])
    assert line == (f"esrepro: error: {run / 'run.json'} has no value at config.frame_skip, but es runs need a "
                    f"number there")


def test_scaling_run_without_target(tmp_path, capsys):
    run = write_run(tmp_path, "es", "Humanoid-v5", 0, [0, 10], config={"target_return": None}, workers=2)
    line = one_error_line(capsys, [
        "scaling", "--runs", run, "--reference", REFERENCE / "scaling_humanoid.csv",
        "--table", tmp_path / "s.csv", "--figure", tmp_path / "s.png"])
    assert line == (f"esrepro: error: {run / 'run.json'} has no value at config.target_return, but es runs need a "
                    f"number there")


def test_every_aggregation_command_checks_its_runs(tmp_path):
    """A truncated run.json, through each command as a user runs it (a separate process)."""
    mujoco = [write_run(tmp_path, "es", "Swimmer-v5", 0, [0, 10]), write_run(tmp_path, "trpo", "Swimmer-v5", 0, [0, 5])]
    atari = write_run(tmp_path, "es", "ALE/Pong-v5", 0, [-21, -20], config={"frame_skip": 4}, workers=1)
    scaling = write_run(tmp_path, "es", "Humanoid-v5", 0, [0, 10], config={"target_return": 5}, workers=1)
    out = tmp_path / "paper"
    commands = [
        ["summary", "--runs", *mujoco, "--reference", REFERENCE / "table3_mujoco_detail.csv", "--out", out / "s.csv"],
        tables_args(mujoco, out),
        ["curves", "--runs", *mujoco, "--out", out / "c.png", out / "c.pdf"],
        ["atari-table", "--runs", atari, "--reference-es-a3c", REFERENCE / "atari_es_vs_a3c.csv",
         "--reference-a2c", REFERENCE / "atari_hyperneat_a2c.csv", "--out", out / "a.md"],
        ["frameskip-figure", "--runs", atari, "--game", "Pong", "--out", out / "f.png"],
        ["scaling", "--runs", scaling, "--reference", REFERENCE / "scaling_humanoid.csv", "--table", out / "t.csv",
         "--figure", out / "t.png"],
    ]
    for damaged in (mujoco[0], atari, scaling):
        path = damaged / "run.json"
        path.write_text(path.read_text()[:25])
    for argv in commands:
        done = run_cli(*argv)
        damaged = next(Path(a) for a in argv if Path(a) in (mujoco[0], atari, scaling))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"esrepro: error: {damaged / 'run.json'} is not valid JSON (truncated?): ")
    assert not out.exists()


def test_runs_left_out_of_a_table_are_named(tmp_path, capsys):
    """A run a table leaves out on purpose (here an ES frame-skip variant in Table 2) is named in one
    warning line; the table is written."""
    runs = [write_run(tmp_path / str(skip), "es", "ALE/Pong-v5", 0, [-21, -20], config={"frame_skip": skip}, workers=1)
            for skip in (2, 4)]
    out = tmp_path / "atari.csv"
    assert main(["atari-table", "--runs", *map(str, runs), "--reference-es-a3c", str(REFERENCE / "atari_es_vs_a3c.csv"),
                 "--reference-a2c", str(REFERENCE / "atari_hyperneat_a2c.csv"), "--out", str(out)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "esrepro: warning: Table 2 leaves out 1 run(s) (neither ES with frame_skip 4 nor A2C): "
        "algo=es env=ALE/Pong-v5 seed=0 frame_skip=2 workers=1"]
    assert out.read_text().splitlines()[1].startswith("Pong,1,-20.0,")

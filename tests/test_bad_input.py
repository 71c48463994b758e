"""Bad input: one clear line naming the key and the value, a non-zero exit, and no run starts.

A hand-written corpus across workflow configs (through Snakemake and through the CLI), command-line
arguments and cluster files; damaged checkpoints are in test_checkpoint.py, damaged run files in
test_run_files.py."""

import json

import pytest
import yaml

from esrepro.cli import main

from conftest import TINY, run_cli, run_snakemake

GOOD = {"es": {"seeds": [0], "params": {"iterations": 2, **TINY}, "envs": {"InvertedPendulum-v5": None}}}
SCALING = {"env": "InvertedPendulum-v5", "workers": [1], "params": {"iterations": 1, "target_return": 10}}


def _with(path, value):
    config = json.loads(json.dumps(GOOD))
    node = config
    *parents, last = path
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return config


_DELETE = object()

#: Workflow configs: (config, texts the one error line must contain: the key as written and the value).
CASES = {
    "unknown env id": (_with(("es", "envs"), {"HalfCheeta-v5": None}), ["HalfCheeta-v5", "es.envs"]),
    "sigma zero": (_with(("es", "params", "sigma"), 0), ["es.params.sigma", "= 0"]),
    "sigma negative in env override": (_with(("es", "envs"), {"InvertedPendulum-v5": {"sigma": -0.1}}),
                                       ["es.envs.InvertedPendulum-v5.sigma", "-0.1"]),
    "missing required key": (_with(("es", "envs"), _DELETE), ["'envs' is a required property"]),
    "unknown key": (_with(("es", "params", "sigmaa"), 0.02), ["'es.params.sigmaa' is unknown"]),
    "non-integer seed": (_with(("es", "seeds"), [0, "one"]), ["es.seeds.1", "'one'"]),
    "negative budget": (_with(("es", "params", "timesteps"), -100), ["es.params.timesteps", "-100"]),
    "Atari parameter for a MuJoCo env": (_with(("es", "params", "frame_skip"), 2),
                                         ["es.params.frame_skip", "Atari envs only"]),
    "unknown Atari game": (_with(("atari",), {"params": {"iterations": 1}, "games": {"Pongg": None}}),
                           ["atari.games", "'Pongg'", "did you mean Pong"]),
    "MuJoCo parameter for an Atari game": (_with(("atari",), {"params": {"iterations": 1, "hidden": [8]},
                                                              "games": {"Pong": None}}),
                                           ["atari.params.hidden", "MuJoCo envs only"]),
    "frame-skip game not in the grid": (_with(("atari",), {"params": {"iterations": 1}, "games": {"Pong": None},
                                                           "frameskip": {"games": ["Breakout"]}}),
                                        ["atari.frameskip.games", "Breakout"]),
    "sigma NaN": (_with(("es", "params", "sigma"), float("nan")), ["'es.params.sigma' = nan", "finite"]),
    "sigma inf in env override": (_with(("es", "envs"), {"InvertedPendulum-v5": {"sigma": float("inf")}}),
                                  ["'es.envs.InvertedPendulum-v5.sigma' = inf", "finite"]),
    "whole-number float budget": (_with(("es", "params", "iterations"), 1.0e30),
                                  ["'es.params.iterations' = 1e+30", "not of type 'integer'"]),
    "float seed": (_with(("es", "seeds"), [2.0]), ["'es.seeds.0' = 2.0", "not of type 'integer'"]),
    "negative seed": (_with(("es", "seeds"), [-1]), ["'es.seeds.0' = -1", "minimum"]),
    "integer beyond 64 bits": (_with(("es", "params", "noise_seed"), 10**30),
                               [f"'es.params.noise_seed' = {10**30}", "64 bits"]),
    "noise table beyond 4 GB": (_with(("es", "params", "noise_table_size"), 10**10),
                                ["'es.params.noise_table_size' = 10000000000", "maximum"]),
    "list for a mapping": (_with(("es", "params"), [1, 2]), ["'es.params' = [1, 2]", "not of type 'object'"]),
    "string for the env mapping": (_with(("es", "envs"), "InvertedPendulum-v5"),
                                   ["'es.envs' = 'InvertedPendulum-v5'", "not of type 'object'"]),
    "unknown section": (_with(("ess",), {}), ["'ess' is unknown"]),
    "unknown communication": (_with(("es", "params", "communication"), "radio"),
                              ["'es.params.communication' = 'radio'"]),
    "one action bin": (_with(("es", "params", "action_bins"), 1), ["'es.params.action_bins' = 1"]),
    "zero episode cap": (_with(("es", "params", "max_episode_steps"), 0), ["'es.params.max_episode_steps' = 0"]),
    "frame_skip set in atari.params": (_with(("atari",), {"params": {"iterations": 1, "frame_skip": 2},
                                                          "games": {"Pong": None}}),
                                       ["'atari.params.frame_skip'", "set by the grid"]),
    "frame_skip zero in the frame-skip grid": (
        _with(("atari",), {"params": {"iterations": 1}, "games": {"Pong": None},
                           "frameskip": {"games": ["Pong"], "frame_skips": [0]}}),
        ["'atari.frameskip.frame_skips.0' = 0"]),
    "scaling without a target": (_with(("scaling",), dict(SCALING, params={"iterations": 1})),
                                 ["'scaling.params.target_return' is null"]),
    "scaling without workers": (_with(("scaling",), {k: v for k, v in SCALING.items() if k != "workers"}),
                                ["'workers' is a required property"]),
    "TRPO gamma NaN": (_with(("trpo",), {"params": {"gamma": float("nan")}, "envs": {"Swimmer-v5": None}}),
                       ["'trpo.params.gamma' = nan"]),
    "unknown TRPO preset": (_with(("trpo",), {"presets": ["zoo", "paper2018"], "envs": {"Swimmer-v5": None}}),
                            ["'trpo.presets.1' = 'paper2018'", "'zoo', 'paper2017'"]),
    "A2C negative timesteps": (_with(("a2c",), {"params": {"timesteps": -5}, "games": {"Pong": None}}),
                               ["'a2c.params.timesteps' = -5"]),
    "noise table smaller than the policy": (_with(("es", "envs"), {"InvertedPendulum-v5": {"noise_table_size": 4000}}),
                                            ["'es.envs.InvertedPendulum-v5.noise_table_size' = 4000",
                                             "must exceed the policy's 4,545 parameters"]),
    "noise table smaller than the scaling runs' policy": (
        _with(("scaling",), dict(SCALING, env="Humanoid-v5", params={"iterations": 1, "target_return": 10,
                                                                     "hidden": [256, 256], "noise_table_size": 10**5})),
        ["'scaling.params.noise_table_size' = 100000", "must exceed the policy's 159,505 parameters"]),
    "noise table smaller than the CNN": (_with(("atari",), {"params": {"iterations": 1, "noise_table_size": 10**6},
                                                            "games": {"Pong": None}}),
                                         ["'atari.params.noise_table_size' = 1000000", "1,687,878 parameters"]),
}
#: The cases also run through Snakemake (the same check, reached from the Snakefile).
SNAKEMAKE_CASES = ["unknown env id", "sigma negative in env override", "missing required key", "unknown key",
                   "non-integer seed", "unknown Atari game", "frame-skip game not in the grid", "sigma NaN",
                   "whole-number float budget", "scaling without a target", "TRPO gamma NaN",
                   "unknown TRPO preset", "noise table smaller than the scaling runs' policy",
                   "noise table smaller than the CNN"]


def _exit_code(argv) -> int:
    """``esrepro ARGV``'s exit code (argparse's own errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esrepro: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_workflow_rejects_bad_config_before_any_job(case, tmp_path):
    config, expected = CASES[case]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    res = run_snakemake("--cores", "1", "--configfile", "bad.yaml", cwd=tmp_path)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("esrepro: error:")]
    assert len(errors) == 1, res.stderr
    for text in expected:
        assert text in errors[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "paper").exists()


@pytest.mark.parametrize("case", CASES)
def test_cli_rejects_bad_config_file(case, tmp_path, monkeypatch, capsys):
    config, expected = CASES[case]
    _assert_config_refused(config, ["train", "--env", "InvertedPendulum-v5"], expected, tmp_path, monkeypatch,
                           capsys)


def _assert_config_refused(config, command, expected, tmp_path, monkeypatch, capsys):
    """``command --seed 0 --config bad.yaml`` with ``config`` in bad.yaml exits 2 with one error line
    holding every text of ``expected``, and writes nothing."""
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert _exit_code([*command, "--seed", "0", "--config", "bad.yaml"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    for text in expected:
        assert text in line
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.yaml"]


#: TRPO grids whose preset is ambiguous: (trpo section, texts of the error line, of `trpo --config` alone).
TRPO_PRESET_CASES = {
    "presets and a preset key": ({"presets": ["zoo"], "params": {"preset": "paper2017"}, "envs": {"Swimmer-v5": None}},
                                 ["'trpo.params.preset' = 'paper2017'", "trpo.presets", "one or the other"]),
    "presets and an env's preset key": ({"presets": ["zoo"], "envs": {"Swimmer-v5": {"preset": "zoo"}}},
                                        ["'trpo.envs.Swimmer-v5.preset' = 'zoo'"]),
    "two presets, none chosen": ({"presets": ["paper2017", "zoo"], "envs": {"Swimmer-v5": None}},
                                 ["runs Swimmer-v5 with the TRPO presets paper2017, zoo", "--params"]),
}


@pytest.mark.parametrize("case", TRPO_PRESET_CASES)
def test_trpo_cli_needs_one_preset(case, tmp_path, monkeypatch, capsys):
    section, expected = TRPO_PRESET_CASES[case]
    _assert_config_refused({"trpo": section}, ["trpo", "--env", "Swimmer-v5"], expected, tmp_path, monkeypatch, capsys)


def test_workflow_rejects_presets_beside_a_preset_key(tmp_path):
    section, expected = TRPO_PRESET_CASES["presets and a preset key"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"trpo": section}))
    res = run_snakemake("--cores", "1", "--configfile", "bad.yaml", cwd=tmp_path)
    errors = [line for line in res.stderr.splitlines() if line.startswith("esrepro: error:")]
    assert res.returncode != 0 and len(errors) == 1, res.stderr
    assert all(text in errors[0] for text in expected)
    assert not (tmp_path / "results").exists()


#: Files with syntax errors: (text, texts of the error line).
FILES = {
    "empty YAML": ("", ["config file 'bad.yaml' must hold a YAML mapping, got NoneType"]),
    "YAML list": ("- es\n", ["config file 'bad.yaml' must hold a YAML mapping, got list"]),
    "invalid YAML": ("es:\n  seeds: [0\n  envs: {}\n", ["config file 'bad.yaml' is not valid YAML at line 3"]),
    "tab-indented YAML": ("es:\n\tseeds: [0]\n", ["config file 'bad.yaml' is not valid YAML at line 2, column 1"]),
}


@pytest.mark.parametrize("case", FILES)
def test_cli_rejects_config_file_syntax(case, tmp_path, monkeypatch, capsys):
    text, expected = FILES[case]
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert _exit_code(["train", "--env", "InvertedPendulum-v5", "--seed", "0", "--config", "bad.yaml"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    for text in expected:
        assert text in line


ENV = ["--env", "InvertedPendulum-v5"]
#: Command lines: (arguments after the subcommand, texts of the error line).
ARGS = {
    "unknown env": (["train", "--env", "Nope-v5", "--seed", "0", "--iterations", "1"], ["Nope-v5"]),
    "seed not an integer": (["train", *ENV, "--seed", "x", "--iterations", "1"], ["--seed", "'x'"]),
    "negative seed": (["train", *ENV, "--seed", "-1", "--iterations", "1"], ["--seed", "-1", ">= 0"]),
    "seed beyond 64 bits": (["train", *ENV, "--seed", str(2**64), "--iterations", "1"], ["--seed", str(2**64)]),
    "negative iterations": (["train", *ENV, "--seed", "0", "--iterations", "-2"], ["--iterations", "-2"]),
    "zero timesteps": (["train", *ENV, "--seed", "0", "--timesteps", "0"], ["--timesteps", "0"]),
    "zero workers": (["train", *ENV, "--seed", "0", "--iterations", "1", "--workers", "0"], ["--workers", "0"]),
    "zero chunk pairs": (["train", *ENV, "--seed", "0", "--iterations", "1", "--chunk-pairs", "0"],
                         ["--chunk-pairs", "0"]),
    "negative sigma": (["train", *ENV, "--seed", "0", "--iterations", "1", "--params", '{"sigma": -1}'],
                       ["'--params.sigma' = -1"]),
    "NaN sigma": (["train", *ENV, "--seed", "0", "--iterations", "1", "--params", '{"sigma": NaN}'],
                  ["'--params.sigma' = nan", "finite"]),
    "whole-number float": (["train", *ENV, "--seed", "0", "--params", '{"iterations": 3.0}'],
                           ["'--params.iterations' = 3.0"]),
    "invalid JSON": (["train", *ENV, "--seed", "0", "--params", '{"sigma": 0.1,}'],
                     ["--params is not valid JSON at line 1, column 15"]),
    "JSON list": (["train", *ENV, "--seed", "0", "--params", "[1]"], ["--params must be a JSON object", "[1]"]),
    "no budget": (["train", *ENV, "--seed", "0"], ["iterations", "timesteps", "budget"]),
    "missing config file": (["train", *ENV, "--seed", "0", "--config", "nope.yaml"],
                            ["config file 'nope.yaml' does not exist"]),
    "TRPO on Atari": (["trpo", "--env", "ALE/Pong-v5", "--seed", "0"], ["trpo runs MuJoCo envs only"]),
    "A2C on MuJoCo": (["a2c", *ENV, "--seed", "0"], ["a2c runs Atari envs only"]),
    "TRPO gamma inf": (["trpo", *ENV, "--seed", "0", "--params", '{"gamma": Infinity}'],
                       ["'--params.gamma' = inf"]),
    "noise table smaller than the policy": (
        ["train", *ENV, "--seed", "0", "--iterations", "1", "--params", '{"noise_table_size": 100}'],
        ["'--params.noise_table_size' = 100", "must exceed the policy's"]),
}


@pytest.mark.parametrize("case", ARGS)
def test_cli_rejects_bad_arguments(case, tmp_path, monkeypatch, capsys):
    args, expected = ARGS[case]
    monkeypatch.chdir(tmp_path)
    assert _exit_code([*args, "--out", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    for text in expected:
        assert text in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "results").exists()


#: Cluster files (``train --cluster FILE``): (text, texts of the error line).
CLUSTER_FILES = {
    "empty": ("", ["cluster file 'cluster.yaml' must hold a YAML mapping, got NoneType"]),
    "invalid YAML": ("kind: slurm\ncores: [4\n", ["cluster file 'cluster.yaml' is not valid YAML at line 3"]),
    "unknown kind": ("kind: lsf\n", ["'kind' = 'lsf'"]),
    "zero cores": ("kind: slurm\ncores: 0\njobs: 1\n", ["'cores' = 0"]),
    "NaN cores": ("kind: slurm\ncores: .nan\njobs: 1\n", ["'cores' = nan", "finite"]),
    "float jobs": ("kind: slurm\ncores: 2\njobs: 2.0\n", ["'jobs' = 2.0", "not of type 'integer'"]),
    "unknown key": ("kind: slurm\ncores: 2\nqueues: x\n", ["'queues' is unknown"]),
}


@pytest.mark.parametrize("case", CLUSTER_FILES)
def test_cli_rejects_bad_cluster_file(case, tmp_path, monkeypatch, capsys):
    text, expected = CLUSTER_FILES[case]
    (tmp_path / "cluster.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    args = ["train", *ENV, "--seed", "0", "--iterations", "1", "--cluster", "cluster.yaml", "--out", "run"]
    assert _exit_code(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    for text in expected:
        assert text in line
    assert not (tmp_path / "run").exists()


def test_cli_rejects_bad_input_in_a_subprocess_with_one_line(tmp_path):
    """The same in a real process: exit code 2, one line on stderr, nothing on stdout."""
    res = run_cli("train", *ENV, "--seed", "-3", "--iterations", "1", "--out", tmp_path / "run")
    assert res.returncode == 2 and res.stdout == ""
    assert "--seed" in _one_error_line(res.stderr)

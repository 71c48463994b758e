"""Bad input: one clear line naming the key and the value, a non-zero exit, and no run starts."""

import json

import pytest
import yaml

from conftest import TINY, run_cli, run_snakemake

GOOD = {"es": {"seeds": [0], "params": {"iterations": 2, **TINY}, "envs": {"InvertedPendulum-v5": None}}}


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
}


@pytest.mark.parametrize("case", CASES)
def test_workflow_rejects_bad_config_before_any_job(case, tmp_path):
    config, expected = CASES[case]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    res = run_snakemake("--cores", "1", "--configfile", "bad.yaml", cwd=tmp_path)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("esrepro: error:")]
    assert len(errors) == 1, res.stderr
    for text in expected:
        assert text in errors[0]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("case", CASES)
def test_cli_rejects_bad_config_file(case, tmp_path):
    config, expected = CASES[case]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    res = run_cli("train", "--env", "InvertedPendulum-v5", "--seed", 0, "--config", "bad.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    for text in expected:
        assert text in res.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("args, expected", [
    (["--env", "Nope-v5", "--seed", "0", "--iterations", "1"], ["Nope-v5"]),
    (["--env", "InvertedPendulum-v5", "--seed", "x", "--iterations", "1"], ["--seed", "'x'"]),
    (["--env", "InvertedPendulum-v5", "--seed", "0", "--iterations", "-2"], ["iterations", "-2"]),
    (["--env", "InvertedPendulum-v5", "--seed", "0", "--timesteps", "0"], ["timesteps", "0"]),
    (["--env", "InvertedPendulum-v5", "--seed", "0", "--iterations", "1", "--params", '{"sigma": -1}'],
     ["sigma", "-1"]),
    (["--env", "InvertedPendulum-v5", "--seed", "0"], ["iterations", "timesteps", "budget"]),
])
def test_cli_rejects_bad_arguments(args, expected, tmp_path):
    res = run_cli("train", *args, "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in last
    assert not (tmp_path / "run").exists()

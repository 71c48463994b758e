"""The TRPO baseline (esrepro/baselines/trpo.py) and its parameter schema: two short real runs on
InvertedPendulum-v5 (a few seconds each) and schema checks."""

import json
import math

import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from esrepro.analysis.runs import PROGRESS_COLUMNS as SHARED_COLUMNS
from esrepro import config
from esrepro.baselines.common import eval_seed, final_timesteps
from esrepro.baselines.trpo import train_trpo

PARAMS_SCHEMA = config.PARAMS_SCHEMAS["trpo"]


def validate_params(params):
    return config.validate_params(params, "trpo")


ENV = "InvertedPendulum-v5"
#: Not a multiple of n_steps * n_envs = 1024: the run must end at 4096.
PARAMS = {"timesteps": 3500, "n_steps": 512, "eval_every_timesteps": 2048, "eval_episodes": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trpo") / "seed3"
    lines = []
    result = train_trpo(ENV, 3, PARAMS, out, threads=1, log=lines.append)
    return out, result, lines


def test_progress_csv(run):
    out, result, lines = run
    progress = pd.read_csv(out / "progress.csv")
    assert tuple(progress.columns[:len(SHARED_COLUMNS)]) == tuple(SHARED_COLUMNS) == (
        "iteration", "timesteps", "episodes", "wall_time_s", "return_mean", "return_std", "return_max",
        "eval_return_mean", "eval_return_std", "eval_length_mean")
    assert progress["iteration"].tolist() == list(range(len(progress)))
    assert progress["timesteps"].tolist() == [0, 2048, 4096]
    assert progress["timesteps"].iloc[-1] == final_timesteps(validate_params(PARAMS)) == 4096
    assert progress["episodes"].is_monotonic_increasing and progress["episodes"].iloc[0] == 0
    assert progress["wall_time_s"].is_monotonic_increasing
    assert math.isnan(progress["return_mean"].iloc[0])  # no training episode before training
    assert progress["return_mean"].iloc[1:].notna().all()
    assert progress["eval_return_mean"].between(0, 1000).all()  # InvertedPendulum: +1 per step, 1000 steps
    assert (progress["eval_length_mean"] >= 1).all()
    assert len(lines) == len(progress) and ENV in lines[0]


def test_outputs_and_run_json(run):
    out, result, _ = run
    assert {p.name for p in out.iterdir()} == {"progress.csv", "run.json", "policy.zip", "vecnormalize.pkl"}
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["algo"] == "trpo" and saved["env"] == ENV and saved["seed"] == 3
    assert saved["config"] == validate_params(PARAMS)  # the full config, defaults filled in
    assert saved["config"]["hidden"] == [64, 64] and saved["config"]["normalize"] is True
    assert saved["timesteps"] == 4096 and saved["threads"] == 1
    assert saved["final_eval_return_mean"] == pd.read_csv(out / "progress.csv")["eval_return_mean"].iloc[-1]
    assert all(saved["versions"][p] for p in ("torch", "stable-baselines3", "sb3-contrib"))


def test_same_seed_same_run(run, tmp_path):
    out, _, _ = run
    train_trpo(ENV, 3, PARAMS, tmp_path, threads=1, log=lambda line: None)
    timing = ["wall_time_s", "eval_time_s"]
    first = pd.read_csv(out / "progress.csv").drop(columns=timing)
    second = pd.read_csv(tmp_path / "progress.csv").drop(columns=timing)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_eval_seeds_distinct():
    seeds = {eval_seed(s, k, e) for s in range(3) for k in range(3) for e in range(3)}
    assert len(seeds) == 27


def test_schema_fills_defaults():
    data = {"timesteps": 1000}
    validate(data, str(PARAMS_SCHEMA))
    schema = yaml.safe_load(PARAMS_SCHEMA.read_text())
    assert set(data) == set(schema["properties"])
    assert data["timesteps"] == 1000 and data["n_envs"] == 2 and data["n_steps"] == 1024
    assert data["target_kl"] == 0.01 and data["hidden"] == [64, 64]
    assert validate_params({})["timesteps"] == 5_000_000  # the paper's budget
    for key, sub in schema["properties"].items():
        assert "default" in sub and sub.get("description"), key


@pytest.mark.parametrize("bad", [{"n_epochs": 10}, {"timesteps": -5}, {"timesteps": 0}, {"hidden": []}])
def test_schema_rejects(bad):
    with pytest.raises(WorkflowError):
        validate(dict(bad), str(PARAMS_SCHEMA))
    with pytest.raises(ValueError, match=next(iter(bad))):
        validate_params(bad)

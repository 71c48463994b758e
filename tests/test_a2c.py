"""The A2C Atari baseline (esrepro/baselines/a2c.py) and its parameter schema: two tiny real runs
on ALE Pong, the training env's frame accounting, the evaluation observations against the
training ones, and schema checks."""

import io
import json
import shutil

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from stable_baselines3 import A2C

from esrepro import checkpoint
from esrepro.baselines.a2c import build, make_training_env, train_a2c, wrap_training_env
from esrepro.baselines.common import COUNTERS, final_timesteps
from esrepro.config import PARAMS_SCHEMAS, ConfigError, validate_params
from esrepro.progress import SHARED_COLUMNS

PARAMS_SCHEMA = PARAMS_SCHEMAS["a2c"]

ENV = "ALE/Pong-v5"
#: 2 envs x 5 steps = 10 agent steps per update; evaluations at 0, 200 and the end (300).
PARAMS = {"timesteps": 300, "n_envs": 2, "eval_every_timesteps": 200, "eval_episodes": 1,
          "eval_max_episode_steps": 40}


def a2c_params(params: dict) -> dict:
    """``params`` validated against config/a2c_params.schema.yaml, defaults filled in."""
    return validate_params(params, "a2c")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(output directory, returned run.json, logged lines) of one tiny run with seed 3."""
    out, lines = tmp_path_factory.mktemp("a2c") / "seed3", []
    return out, train_a2c(ENV, 3, PARAMS, out, threads=1, log=lines.append), lines


def test_progress_csv(run):
    out, _, lines = run
    progress = pd.read_csv(out / "progress.csv")
    assert tuple(progress.columns) == (*SHARED_COLUMNS, "return_min", "length_mean", "updates",
                                       "eval_time_s", "frames")
    assert progress["iteration"].tolist() == [0, 1, 2]
    assert progress["timesteps"].tolist() == [0, 200, 300] and final_timesteps(a2c_params(PARAMS)) == 300
    assert progress["frames"].tolist() == [0, 800, 1200]  # frame_skip 4
    assert progress["updates"].tolist() == [0, 20, 30]
    assert progress["wall_time_s"].is_monotonic_increasing
    assert progress["episodes"].eq(0).all() and progress["return_mean"].isna().all()  # no Pong game ends
    assert progress["eval_return_mean"].between(-21, 21).all()
    # Evaluation games are cut at 40 agent steps (the no-ops of the reset not counted).
    assert progress["eval_length_mean"].eq(40).all()
    assert len(lines) == 3 and ENV in lines[0]


def test_outputs_and_run_json(run):
    out, result, _ = run
    assert {p.name for p in out.iterdir()} == {"progress.csv", "run.json", "policy.zip", "checkpoint"}
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["algo"] == "a2c" and saved["env"] == ENV and saved["seed"] == 3
    assert saved["config"] == a2c_params(PARAMS)  # the full config, defaults filled in
    assert saved["timesteps"] == 300 and saved["frames"] == 1200 and saved["threads"] == 1
    assert saved["final_eval_return_mean"] == pd.read_csv(out / "progress.csv")["eval_return_mean"].iloc[-1]
    assert all(saved["versions"][p] for p in ("torch", "stable-baselines3"))


def test_same_seed_same_run(run, tmp_path):
    train_a2c(ENV, 3, PARAMS, tmp_path, threads=1, log=lambda line: None)
    first, second = (pd.read_csv(d / "progress.csv").drop(columns=["wall_time_s", "eval_time_s"])
                     for d in (run[0], tmp_path))
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_final_checkpoint_and_resume(run, tmp_path):
    """The final checkpoint holds SB3's save file of the final model (no VecNormalize for A2C);
    a rerun with a larger budget continues from it, keeping its progress rows."""
    out = run[0]
    ident = json.loads((out / "checkpoint" / "checkpoint.json").read_text())["identity"]
    shapes = dict.fromkeys(("model", "train_returns", "train_lengths"), (None,))
    arrays, scalars = checkpoint.load(out, ident, shapes, COUNTERS)
    assert scalars["timesteps"] == 300 and scalars["iteration"] == 30  # 30 updates of 2 x 5 agent steps
    saved, final = A2C.load(io.BytesIO(arrays["model"].tobytes()), device="cpu"), A2C.load(out / "policy.zip")
    state = [[*m.policy.state_dict().values(), *(v for st in m.policy.optimizer.state_dict()["state"].values()
                                                 for v in st.values() if torch.is_tensor(v))] for m in (saved, final)]
    assert len(state[0]) == len(state[1]) > 10 and all(torch.equal(a, b) for a, b in zip(*state))

    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    lines = []
    train_a2c(ENV, 3, PARAMS | {"timesteps": 400}, tmp_path, threads=1, log=lines.append)
    assert lines[0] == f"resuming {tmp_path} from timesteps 300" and len(lines) == 2
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert progress["timesteps"].tolist() == [0, 200, 300, 400] and progress["frames"].tolist()[-1] == 1600
    pd.testing.assert_frame_equal(progress.iloc[:3], pd.read_csv(out / "progress.csv"), check_exact=True)


def test_guard_against_emulator_frameskip():
    """ALE v5's default emulator frameskip 4 under AtariWrapper's own skip of 4 would be 16 frames
    per agent step (docs/paper.md, known traps)."""
    env = gym.make(ENV)
    with pytest.raises(ValueError, match="'ALE/Pong-v5' has emulator frameskip=4"):
        wrap_training_env(env)
    env.close()


def test_training_step_is_frame_skip_frames():
    # Freeway has no FIRE action (no FIRE-reset steps); noop_max 0: frames come from our steps only.
    params = a2c_params({"n_envs": 1, "noop_max": 0, "frame_skip": 3})
    env = make_training_env("ALE/Freeway-v5", 0, params)
    env.reset()
    ale = env.venv.envs[0].unwrapped.ale
    start = ale.getEpisodeFrameNumber()
    for _ in range(10):
        env.step(np.array([1]))
    assert ale.getEpisodeFrameNumber() - start == 30
    env.close()


def test_eval_observations_match_training():
    """The policy sees the same (4, 84, 84) uint8 stack, oldest frame first, in evaluation (gymnasium
    AtariPreprocessing + FrameStackObservation) as in training (AtariWrapper + VecFrameStack,
    transposed by SB3); the gray conversions differ only by rounding."""
    seed = 5
    setup = build("ALE/Freeway-v5", seed, a2c_params({"n_envs": 1, "noop_max": 0}))
    train_env, eval_env = setup.model.get_env(), setup.eval_env
    assert setup.model.observation_space.shape == eval_env.observation_space.shape == (4, 84, 84)
    train_env.seed(seed)
    train_obs = train_env.reset()
    eval_obs, _ = eval_env.reset(seed=seed)
    actions = np.random.default_rng(0).integers(3, size=24)
    for t, action in enumerate(actions):
        train_obs, *_ = train_env.step(np.array([action]))
        eval_obs, *_ = eval_env.step(action)
        if t >= 4:  # both stacks hold 4 frames taken after the reset
            assert train_obs.dtype == eval_obs.dtype == np.uint8 and train_obs.shape == (1, *eval_obs.shape)
            diff = np.abs(train_obs[0].astype(int) - eval_obs.astype(int)).mean(axis=(1, 2))
            assert (diff < 0.25).all(), (t, diff)
            reversed_diff = np.abs(train_obs[0, ::-1].astype(int) - eval_obs.astype(int)).mean()
            assert reversed_diff > 0.4 > diff.mean(), (t, reversed_diff)  # the order is not symmetric
    train_env.close()
    eval_env.close()


def test_schema_defaults_documented():
    schema = yaml.safe_load(PARAMS_SCHEMA.read_text())["properties"]
    filled = a2c_params({})
    assert filled == {key: sub["default"] for key, sub in schema.items()}
    assert all(sub.get("description") for sub in schema.values())
    zoo = {"n_envs": 16, "n_steps": 5, "learning_rate": 7e-4, "ent_coef": 0.01, "vf_coef": 0.25, "rmsprop_eps": 1e-5}
    assert {key: filled[key] for key in zoo} == zoo
    assert filled["timesteps"] * filled["frame_skip"] == 320_000_000  # the paper's A2C budget in frames


@pytest.mark.parametrize("bad", [{"frame_stack": 4}, {"timesteps": 0}, {"n_envs": 0}, {"learning_rate": 0},
                                 {"frame_skip": 0}, {"eval_max_episode_steps": 0}, {"noop_max": -1}])
def test_schema_rejects_naming_the_key(bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=f"'{key}'"):
        a2c_params(bad)
    with pytest.raises(WorkflowError):  # the workflow's own validation (Snakefile) agrees
        validate(dict(bad), str(PARAMS_SCHEMA))


@pytest.mark.parametrize("env_id", ["ALE/Pongg-v5", "CartPole-v1"])
def test_non_atari_env_rejected(env_id, tmp_path):
    with pytest.raises(ValueError, match=env_id):
        train_a2c(env_id, 0, PARAMS, tmp_path, log=lambda line: None)
    assert not (tmp_path / "progress.csv").exists()

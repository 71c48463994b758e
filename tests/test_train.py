"""The training loop on real MuJoCo: learning, the determinism contract, checkpoints and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from esrepro.checkpoint import CheckpointMismatch
from esrepro.config import run_params
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

from conftest import TINY, run_cli

WALL = ["wall_time_s", "iteration_time_s"]


def params(env="InvertedPendulum-v5", **overrides):
    return run_params(None, env, overrides=overrides)


def train(client, out, env="InvertedPendulum-v5", seed=3, chunk_pairs=None, **overrides):
    config = RunConfig.from_params(env, seed, params(env, **overrides))
    return Trainer(config, out, log=lambda _: None).run(client, chunk_pairs)


def initial_params(env, seed, overrides):
    """The parameters a run of ``env`` and ``seed`` starts from (iteration 0)."""
    return Trainer(RunConfig.from_params(env, seed, params(env, **overrides)), "unused", log=None).es.theta


def outputs(out):
    """(final parameters, progress without wall-clock columns) of a run directory."""
    with np.load(out / "policy.npz", allow_pickle=False) as f:
        theta = f["theta"]
    return theta, pd.read_csv(out / "progress.csv").drop(columns=WALL)


# Exercises every path that could break determinism: observation statistics recorded often, action
# noise, extra rounds of pairs for the timestep minimum, and the binned policy.
DETERMINISM = dict(TINY, iterations=3, obs_norm_prob=0.3, min_timesteps_per_iteration=900, action_bins=10)


def test_same_result_with_one_or_two_workers_and_any_chunking(clients, tmp_path):
    runs = {(1, None): clients[1], (2, None): clients[2], (2, 1): clients[2], (1, 5): clients[1]}
    results = {}
    for (workers, chunk), client in runs.items():
        out = tmp_path / f"w{workers}c{chunk}"
        train(client, out, chunk_pairs=chunk, **DETERMINISM)
        results[workers, chunk] = outputs(out)
    theta0, progress0 = results[1, None]
    assert progress0["obs_count"].iloc[-1] > 1  # observation statistics were recorded
    assert (progress0["pairs"].iloc[1:] > DETERMINISM["pairs_per_iteration"]).any()  # extra rounds ran
    assert not np.array_equal(theta0, initial_params("InvertedPendulum-v5", 3, DETERMINISM))  # training moved it
    for key, (theta, progress) in results.items():
        assert np.array_equal(theta, theta0), key
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


def test_different_seeds_give_different_runs(clients, tmp_path):
    train(clients[2], tmp_path / "a", seed=1, **dict(TINY, iterations=2))
    train(clients[2], tmp_path / "b", seed=2, **dict(TINY, iterations=2))
    assert not np.array_equal(outputs(tmp_path / "a")[0], outputs(tmp_path / "b")[0])


def test_min_timesteps_per_iteration_is_met(clients, tmp_path):
    train(clients[2], tmp_path, **dict(TINY, iterations=2, min_timesteps_per_iteration=2000))
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert (progress["timesteps"].diff().iloc[1:] >= 2000).all()


def test_adaptive_episode_cap_follows_the_previous_iteration(clients, tmp_path):
    """Paper section 2.1: the training episodes of iteration t stop after ceil(factor x the mean
    training episode length of iteration t - 1) steps; evaluation episodes are not capped; the run
    stays the same with 1 or 2 workers. Swimmer's episodes always last max_episode_steps."""
    capped = dict(TINY, iterations=3, max_episode_steps=100, episode_cap_factor=0.5, eval_episodes=1)
    for workers in (1, 2):
        train(clients[workers], tmp_path / f"w{workers}", env="Swimmer-v5", **capped)
    (theta1, progress1), (theta2, progress2) = outputs(tmp_path / "w1"), outputs(tmp_path / "w2")
    assert np.array_equal(theta1, theta2)
    pd.testing.assert_frame_equal(progress1, progress2, check_exact=True)
    assert list(progress1["length_mean"].iloc[1:]) == [100, 50, 25]
    assert progress1["episode_cap"].iloc[1:].tolist()[1:] == [50, 25] and np.isnan(progress1["episode_cap"].iloc[1])
    assert (progress1["eval_length_mean"] == 100).all()


def test_es_solves_inverted_pendulum(clients, tmp_path):
    """Paper Table 3: ES reaches InvertedPendulum's maximum (1000: every step of the 1000-step
    episode earns 1) in ~5e5 timesteps."""
    train(clients[2], tmp_path, seed=0, timesteps=600_000, pairs_per_iteration=30, eval_episodes=3,
          noise_table_size=5_000_000)
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert progress["eval_return_mean"].iloc[0] < 200
    assert progress["eval_return_mean"].max() == 1000


def test_resume_in_process_equals_uninterrupted_run(clients, tmp_path):
    train(clients[2], tmp_path / "full", **dict(TINY, iterations=4, checkpoint_every=2))
    train(clients[2], tmp_path / "cut", **dict(TINY, iterations=2, checkpoint_every=2))
    train(clients[1], tmp_path / "cut", **dict(TINY, iterations=4, checkpoint_every=2))  # extends the budget
    (theta_a, prog_a), (theta_b, prog_b) = outputs(tmp_path / "full"), outputs(tmp_path / "cut")
    assert np.array_equal(theta_a, theta_b)
    pd.testing.assert_frame_equal(prog_a, prog_b, check_exact=True)
    assert len(prog_b) == 5


def test_killed_run_resumes_bit_identical(tmp_path):
    args = ["train", "--env", "InvertedPendulum-v5", "--seed", 5, "--workers", 1, "--iterations", 40,
            "--params", json.dumps(dict(TINY, max_episode_steps=1000, pairs_per_iteration=10))]
    full = run_cli(*args, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([sys.executable, "-m", "esrepro", *map(str, args), "--out", tmp_path / "killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = tmp_path / "killed" / "checkpoint" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and json.loads(ckpt.read_text())["iteration"] >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(ckpt.read_text())["iteration"]
    assert 3 <= killed_at < 40, "the run ended before it could be killed"
    assert not (tmp_path / "killed" / "run.json").exists()
    resumed = run_cli(*args, "--out", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {tmp_path / 'killed'} from iteration" in resumed.stdout
    (theta_a, prog_a), (theta_b, prog_b) = outputs(tmp_path / "full"), outputs(tmp_path / "killed")
    assert np.array_equal(theta_a, theta_b)
    pd.testing.assert_frame_equal(prog_a, prog_b, check_exact=True)


@pytest.mark.parametrize("change, names", [
    ({"env": "Swimmer-v5"}, ["env", "num_params"]),
    ({"sigma": 0.05}, ["params.sigma"]),
    ({"hidden": [32, 32]}, ["num_params", "params.hidden"]),
])
def test_checkpoint_of_another_configuration_is_refused(clients, tmp_path, change, names):
    train(clients[2], tmp_path, **dict(TINY, iterations=1))
    before = (tmp_path / "checkpoint" / "checkpoint.json").read_text()
    env = change.pop("env", "InvertedPendulum-v5")
    with pytest.raises(CheckpointMismatch) as err:
        train(clients[2], tmp_path, env=env, **dict(TINY, iterations=2, **change))
    for name in names:
        assert name in str(err.value)
    assert (tmp_path / "checkpoint" / "checkpoint.json").read_text() == before


def test_cli_refuses_mismatched_checkpoint(tmp_path):
    common = ["train", "--seed", 0, "--workers", 1, "--iterations", 1, "--params", json.dumps(TINY), "--out", tmp_path]
    assert run_cli(*common[:1], "--env", "InvertedPendulum-v5", *common[1:]).returncode == 0
    res = run_cli(*common[:1], "--env", "Swimmer-v5", *common[1:])
    assert res.returncode == 2
    assert "belongs to another run" in res.stderr and "Swimmer-v5" in res.stderr


def test_outputs_of_a_run(clients, tmp_path):
    summary = train(clients[2], tmp_path, **dict(TINY, iterations=2))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run == json.loads(json.dumps(summary))
    assert run["env"] == "InvertedPendulum-v5" and run["algo"] == "es" and run["iterations"] == 2
    assert run["config"]["sigma"] == 0.02 and run["versions"]["mujoco"]
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert list(progress["iteration"]) == [0, 1, 2]
    assert progress["timesteps"].iloc[-1] == run["timesteps"] > 0
    assert (progress["episodes"].diff().iloc[1:] == 2 * TINY["pairs_per_iteration"]).all()
    with np.load(tmp_path / "policy.npz", allow_pickle=False) as f:
        assert f["theta"].dtype == np.float32 and f["theta"].size == run["num_params"]
        assert str(f["env_id"]) == "InvertedPendulum-v5"
    assert not list(tmp_path.rglob(".*.tmp*"))

"""What the Stable-Baselines3 baselines (TRPO, A2C) share: one run's driver, which trains an SB3
model, evaluates its deterministic policy every ``eval_every_timesteps`` and writes
``progress.csv`` (the suite's shared columns, esrepro/progress.py) and ``run.json``
(esrepro/provenance.py) in the same format for every algorithm (docs/design.md, Data flow).

The evaluation protocol is ours (the paper does not describe its baselines' evaluation): the
deterministic action (the mean, or the most probable discrete action), unnormalized rewards,
episode ``e`` of evaluation point ``k`` of run ``seed`` reset with the seed :func:`eval_seed`.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esrepro import config
from esrepro.atomic import atomic_output, write_json
from esrepro.progress import write_progress
from esrepro.provenance import collect

#: A baseline's columns of progress.csv after the shared ones (one row per evaluation point).
BASELINE_COLUMNS = ("return_min", "length_mean", "updates", "eval_time_s")


def eval_seed(seed: int, eval_index: int, episode: int) -> int:
    """Reset seed of evaluation episode ``episode`` at evaluation point ``eval_index`` of run ``seed``."""
    return int(np.random.SeedSequence([seed, eval_index, episode]).generate_state(1)[0])


def final_timesteps(params: dict) -> int:
    """Timesteps a run of ``params`` ends at: ``timesteps`` rounded up to a multiple of
    ``n_steps * n_envs`` (SB3's on-policy algorithms always complete a rollout)."""
    rollout = params["n_steps"] * params["n_envs"]
    return -(-params["timesteps"] // rollout) * rollout


def _stats(values) -> dict:
    """mean, std, max, min of ``values``; NaN for an empty list."""
    if not values:
        return dict.fromkeys(("mean", "std", "max", "min"), math.nan)
    a = np.asarray(values, dtype=float)
    return {"mean": a.mean(), "std": a.std(), "max": a.max(), "min": a.min()}


def _finite_or_none(x):
    """``float(x)``, or None for NaN (valid JSON)."""
    return None if x is None or math.isnan(x) else float(x)


def _no_extra_columns(timesteps: int) -> dict:
    return {}


@dataclass
class Setup:
    """What an algorithm module builds for one run, handed to :func:`train_baseline`.

    Attributes
    ----------
    model : stable_baselines3.common.base_class.BaseAlgorithm
        The untrained model; ``model.get_env()`` is its training VecEnv (closed after training).
    eval_env : gymnasium.Env
        The single evaluation env (closed after training).
    eval_obs : callable or None
        Maps an evaluation observation to the policy's input (e.g. frozen VecNormalize
        statistics); None passes it unchanged.
    save : callable or None
        ``save(out_dir)`` writes the algorithm's extra outputs after training.
    extra_columns : callable
        ``extra_columns(timesteps) -> dict`` of further progress columns (after
        :data:`BASELINE_COLUMNS`), also written to run.json for the final timesteps.
    """

    model: object
    eval_env: object
    eval_obs: Callable | None = None
    save: Callable[[Path], None] | None = None
    extra_columns: Callable[[int], dict] = field(default=_no_extra_columns)


def evaluate(setup: Setup, seed: int, eval_index: int, episodes: int) -> dict:
    """``episodes`` deterministic episodes of the current policy on ``setup.eval_env``.

    Returns
    -------
    dict
        ``eval_return_mean``, ``eval_return_std`` (undiscounted, unnormalized returns) and
        ``eval_length_mean`` (env steps); NaN for ``episodes == 0``.
    """
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = setup.eval_env.reset(seed=eval_seed(seed, eval_index, episode))
        total, length, done = 0.0, 0, False
        while not done:
            if setup.eval_obs is not None:
                obs = setup.eval_obs(obs)
            action, _ = setup.model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = setup.eval_env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    r = _stats(returns)
    return {"eval_return_mean": r["mean"], "eval_return_std": r["std"],
            "eval_length_mean": _stats(lengths)["mean"]}


def _progress_callback(setup: Setup, env_id: str, seed: int, params: dict, path: Path, log):
    """The SB3 callback that counts training episodes and writes one progress row per evaluation
    point (see :func:`train_baseline`'s notes); ``.rows`` and ``.episodes`` hold the results."""
    from stable_baselines3.common.callbacks import BaseCallback

    rollout = params["n_steps"] * params["n_envs"]  # each finished rollout is one policy update
    columns = (*BASELINE_COLUMNS, *setup.extra_columns(0))

    class Progress(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rows = []
            self.episodes = 0
            self.returns, self.lengths = [], []
            self.next_eval = 0

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()  # wall_time_s: training and evaluation only

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:  # Monitor: a finished episode, unnormalized return
                    self.episodes += 1
                    self.returns.append(info["episode"]["r"])
                    self.lengths.append(info["episode"]["l"])
            return True

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps >= self.next_eval:
                self.record()

        def _on_training_end(self) -> None:
            if self.rows[-1]["timesteps"] != self.model.num_timesteps:
                self.record()

        def record(self) -> None:
            steps = self.model.num_timesteps
            t_eval = time.perf_counter()
            ev = evaluate(setup, seed, len(self.rows), params["eval_episodes"])
            eval_time = time.perf_counter() - t_eval
            tr, ln = _stats(self.returns), _stats(self.lengths)
            row = {"iteration": len(self.rows), "timesteps": steps, "episodes": self.episodes,
                   "wall_time_s": time.perf_counter() - self.t0, "return_mean": tr["mean"],
                   "return_std": tr["std"], "return_max": tr["max"], **ev, "return_min": tr["min"],
                   "length_mean": ln["mean"], "updates": steps // rollout, "eval_time_s": eval_time,
                   **setup.extra_columns(steps)}
            self.rows.append(row)
            self.returns, self.lengths = [], []
            every = params["eval_every_timesteps"]
            self.next_eval = (steps // every + 1) * every
            write_progress(path, self.rows, columns)
            log(f"{env_id} seed {seed} | timesteps {steps:>10,d} | train return mean {tr['mean']:9.2f}"
                f" | eval {ev['eval_return_mean']:9.2f} | {row['wall_time_s']:8.1f} s")

    return Progress()


def train_baseline(algo: str, env_id: str, seed: int, params: dict, out_dir, threads: int, log,
                   build: Callable[[str, int, dict], Setup]) -> dict:
    """Validate ``params`` against ``algo``'s schema, build the run with ``build(env_id, seed,
    params)`` under ``threads`` torch threads, train it, and write ``out_dir/{progress.csv,
    policy.zip, run.json}`` (plus ``Setup.save``'s files).

    Parameters
    ----------
    algo : str
        A key of :data:`esrepro.config.PARAMS_SCHEMAS` ("trpo", "a2c"); run.json's ``algo``.
    env_id : str
        A registered gymnasium id.
    seed : int
        The run seed (``build`` seeds the model and training envs with it; evaluation episodes
        use :func:`eval_seed`).
    params : dict
        Run parameters; missing keys get the schema's defaults. Must hold ``timesteps``,
        ``n_steps``, ``n_envs``, ``eval_every_timesteps``, ``eval_episodes``.
    out_dir : path-like
        Created if missing; existing outputs are overwritten (no resume).
    threads : int
        torch intra-op threads for this run (restored afterwards).
    log : callable
        Receives one progress line per evaluation point.
    build : callable
        Builds the model and envs from the validated params (called with torch's threads set).

    Returns
    -------
    dict
        What run.json holds: algo, env, seed, the validated config, final timesteps, episodes,
        times, final evaluation return, threads and provenance (versions, commit, host).

    Raises
    ------
    esrepro.config.ConfigError
        For bad ``params``, naming the key and the value.
    ValueError
        For an unknown ``env_id``.

    Notes
    -----
    Training stops at the first multiple of ``n_steps * n_envs`` at or above ``timesteps``
    (:func:`final_timesteps`): SB3 only stops between rollouts. Evaluation points are the initial
    policy (row 0, timesteps 0), the first policy update boundary at or after each multiple of
    ``eval_every_timesteps``, and the end of training; each is evaluated after the policy update,
    so a row's policy was trained on exactly ``timesteps`` steps. ``return_*`` are the
    unnormalized returns (SB3's Monitor) of the training episodes finished since the previous row,
    NaN if none. ``wall_time_s`` counts training and evaluation from the start of ``learn``
    (validation, imports and env/model construction are ``setup_time_s`` in run.json).

    A run is a function of (env, seed, params, threads): two runs with the same arguments on the
    same machine and library versions give identical progress (wall times aside). A different
    ``threads`` changes torch's float reduction order, so results differ in the last bits from the
    first update on and the runs diverge; keep ``threads`` fixed (1) for reproducible results.
    """
    import torch

    from esrepro.envs.mujoco import check_env_id

    started = time.time()
    t_setup = time.perf_counter()
    params = config.validate_params(params, algo)
    check_env_id(env_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        setup = build(env_id, seed, params)
        progress = _progress_callback(setup, env_id, seed, params, out_dir / "progress.csv", log)
        setup_time = time.perf_counter() - t_setup
        try:
            setup.model.learn(total_timesteps=params["timesteps"], callback=progress, log_interval=None)
            with atomic_output(out_dir / "policy.zip") as tmp:
                setup.model.save(tmp)
            if setup.save is not None:
                setup.save(out_dir)
        finally:
            setup.model.get_env().close()
            setup.eval_env.close()
    finally:
        torch.set_num_threads(previous_threads)

    steps = int(setup.model.num_timesteps)
    last = progress.rows[-1]
    result = {"algo": algo, "env": env_id, "seed": seed, "config": params, "timesteps": steps,
              **setup.extra_columns(steps), "episodes": progress.episodes,
              "wall_time_s": last["wall_time_s"], "setup_time_s": setup_time,
              "final_eval_return_mean": _finite_or_none(last["eval_return_mean"]), "threads": threads,
              **collect(started)}
    write_json(out_dir / "run.json", result)
    return result

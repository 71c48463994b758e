"""The TRPO baseline of the paper's MuJoCo comparison (Table 1): one run of sb3-contrib's TRPO.

Provenance
----------
- Algorithm: Trust Region Policy Optimization, Schulman, Levine, Moritz, Jordan, Abbeel 2015
  (arXiv:1502.05477), as implemented by sb3-contrib (``sb3_contrib.TRPO``: natural-gradient policy
  step by conjugate gradient, KL line search, separate value network fitted with Adam, GAE).
- What the paper says (Salimans et al. 2017, section 4.1): ES is compared with "a highly tuned
  implementation of TRPO" trained for 5M timesteps per env, with the same policy network as ES
  (64-64 tanh MLP). It publishes no TRPO hyperparameters.
- Hyperparameters: rl-baselines3-zoo's tuned TRPO settings for MuJoCo (hyperparams/trpo.yml,
  "mujoco-defaults", keyed by -v4 ids): VecNormalize (obs and reward, reward discount = gamma),
  n_envs 2, n_steps 1024, batch_size 128, gamma 0.99, gae_lambda 0.95, cg_max_steps 25,
  cg_damping 0.1, n_critic_updates 20, learning_rate 1e-3; HalfCheetah target_kl 0.04, Swimmer
  gamma 0.9999. Defaults and sources are in config/trpo_params.schema.yaml.
- Network: policy and value function are separate 64-64 tanh MLPs (SB3's MlpPolicy with
  ``net_arch=dict(pi=hidden, vf=hidden)``, ``activation_fn=nn.Tanh``; orthogonal init and a
  state-independent log-std, SB3's defaults), not the paper's normc init.
- Evaluation (ours, not in the paper): the deterministic (mean) action, on a separate env whose
  observations are normalized with the training VecNormalize statistics frozen at that moment,
  raw (unnormalized) rewards; episode ``e`` of evaluation ``k`` resets with a seed drawn from
  ``SeedSequence([seed, k, e])``.

Outputs in ``out_dir``: ``progress.csv`` (the suite's shared columns first), ``policy.zip`` (SB3
model), ``vecnormalize.pkl`` (when ``normalize``), ``run.json``. Every file is written atomically.
"""

import math
import time
from pathlib import Path

import numpy as np

from esrepro import config
from esrepro.atomic import atomic_output, write_json
from esrepro.config import PARAMS_SCHEMAS
from esrepro.progress import write_progress
from esrepro.provenance import collect

PARAMS_SCHEMA = PARAMS_SCHEMAS["trpo"]

#: TRPO's columns of progress.csv after the shared ones (one row per evaluation point).
TRPO_COLUMNS = ("return_min", "length_mean", "updates", "eval_time_s")


def validate_params(params: dict) -> dict:
    """A copy of ``params`` checked against config/trpo_params.schema.yaml with its defaults filled in.

    Raises
    ------
    esrepro.config.ConfigError
        Naming the key and the value.
    """
    return config.validate_params(params, "trpo")


def final_timesteps(params: dict) -> int:
    """Timesteps a run of ``params`` ends at: ``timesteps`` rounded up to a multiple of
    ``n_steps * n_envs`` (SB3 always completes a rollout)."""
    rollout = params["n_steps"] * params["n_envs"]
    return -(-params["timesteps"] // rollout) * rollout


def eval_seed(seed: int, eval_index: int, episode: int) -> int:
    """Reset seed of evaluation episode ``episode`` at evaluation point ``eval_index`` of run ``seed``."""
    return int(np.random.SeedSequence([seed, eval_index, episode]).generate_state(1)[0])


def _stats(values) -> dict:
    """mean, std, max, min of ``values``; NaN for an empty list."""
    if not values:
        return dict.fromkeys(("mean", "std", "max", "min"), math.nan)
    a = np.asarray(values, dtype=float)
    return {"mean": a.mean(), "std": a.std(), "max": a.max(), "min": a.min()}


def _finite_or_none(x):
    """``float(x)``, or None for NaN (valid JSON)."""
    return None if x is None or math.isnan(x) else float(x)


def train_trpo(env_id: str, seed: int, params: dict, out_dir, threads: int = 1, log=print) -> dict:
    """Train sb3-contrib TRPO on ``env_id`` and write ``out_dir/{progress.csv, policy.zip,
    vecnormalize.pkl, run.json}``.

    Parameters
    ----------
    env_id : str
        A gymnasium id, e.g. ``"HalfCheetah-v5"``.
    seed : int
        Seeds torch, numpy, Python's ``random``, the training envs (env ``i`` gets ``seed + i`` at
        its first reset) and the evaluation episodes (:func:`eval_seed`).
    params : dict
        Run parameters (config/trpo_params.schema.yaml); missing keys get the schema's defaults.
    out_dir : path-like
        Created if missing; existing outputs are overwritten (no resume).
    threads : int
        torch intra-op threads for this run (restored afterwards).
    log : callable
        Receives one progress line per evaluation point.

    Returns
    -------
    dict
        The content of run.json.

    Notes
    -----
    Training stops at the first multiple of ``n_steps * n_envs`` at or above ``timesteps``
    (exactly ``timesteps`` when it is a multiple; :func:`final_timesteps`): SB3 only stops between
    rollouts. Evaluation points are the initial policy (row 0, timesteps 0), the first policy update
    boundary at or after each multiple of ``eval_every_timesteps``, and the end of training; each is
    evaluated after the policy update, so a row's policy was trained on exactly ``timesteps`` steps.
    ``return_*`` are the unnormalized returns (Monitor) of the training episodes finished since the
    previous row, NaN if none. ``wall_time_s`` counts training and evaluation from the start of
    ``learn`` (validation, imports and env/model construction are ``setup_time_s`` in run.json).

    A run is a function of (env, seed, params, threads): two runs with the same arguments on the same
    machine and library versions give identical progress (wall times aside). A different ``threads``
    changes torch's float reduction order, so results differ in the last bits from the first
    evaluation on and the runs diverge; keep ``threads`` fixed (1) for reproducible results.
    """
    import torch

    from esrepro.envs import check_env_id

    started = time.time()
    t_setup = time.perf_counter()
    params = validate_params(params)
    check_env_id(env_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(env_id, seed, params, out_dir, threads, log, started, t_setup)
    finally:
        torch.set_num_threads(previous_threads)


def _train(env_id, seed, params, out_dir, threads, log, started, t_setup) -> dict:
    """The body of :func:`train_trpo`, with validated ``params`` and torch's threads set."""
    import gymnasium as gym
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    # Training envs: DummyVecEnv of Monitor(TimeLimit(env)), no passive env checker, no renderer.
    env = make_vec_env(env_id, n_envs=params["n_envs"], seed=seed,
                       env_kwargs={"disable_env_checker": True, "render_mode": None})
    if params["normalize"]:
        env = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=params["gamma"])
    eval_env = gym.make(env_id, disable_env_checker=True)

    model = TRPO(
        "MlpPolicy", env, learning_rate=params["learning_rate"], n_steps=params["n_steps"],
        batch_size=params["batch_size"], gamma=params["gamma"], gae_lambda=params["gae_lambda"],
        cg_max_steps=params["cg_max_steps"], cg_damping=params["cg_damping"],
        n_critic_updates=params["n_critic_updates"], target_kl=params["target_kl"],
        policy_kwargs={"net_arch": {"pi": list(params["hidden"]), "vf": list(params["hidden"])},
                       "activation_fn": torch.nn.Tanh},
        seed=seed, device="cpu", verbose=0)

    rollout = params["n_steps"] * params["n_envs"]  # each finished rollout is one policy update
    rows = []
    progress_path = out_dir / "progress.csv"

    def evaluate(eval_index: int) -> dict:
        """Deterministic episodes of the current policy, observation statistics frozen."""
        returns, lengths = [], []
        for episode in range(params["eval_episodes"]):
            obs, _ = eval_env.reset(seed=eval_seed(seed, eval_index, episode))
            total, length, done = 0.0, 0, False
            while not done:
                if params["normalize"]:
                    obs = env.normalize_obs(obs)  # does not update the statistics
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        r = _stats(returns)
        return {"eval_return_mean": r["mean"], "eval_return_std": r["std"],
                "eval_length_mean": _stats(lengths)["mean"]}

    class Progress(BaseCallback):
        """Counts training episodes and evaluates after policy updates (see train_trpo's notes)."""

        def __init__(self):
            super().__init__()
            self.episodes = 0
            self.returns, self.lengths = [], []
            self.next_eval = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.episodes += 1
                    self.returns.append(info["episode"]["r"])
                    self.lengths.append(info["episode"]["l"])
            return True

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps >= self.next_eval:
                self.record()

        def _on_training_end(self) -> None:
            if rows[-1]["timesteps"] != self.model.num_timesteps:
                self.record()

        def record(self) -> None:
            steps = self.model.num_timesteps
            t_eval = time.perf_counter()
            ev = evaluate(len(rows))
            eval_time = time.perf_counter() - t_eval
            tr, ln = _stats(self.returns), _stats(self.lengths)
            row = {"iteration": len(rows), "timesteps": steps, "episodes": self.episodes,
                   "wall_time_s": time.perf_counter() - t0, "return_mean": tr["mean"],
                   "return_std": tr["std"], "return_max": tr["max"], **ev, "return_min": tr["min"],
                   "length_mean": ln["mean"], "updates": steps // rollout, "eval_time_s": eval_time}
            rows.append(row)
            self.returns, self.lengths = [], []
            self.next_eval = (steps // params["eval_every_timesteps"] + 1) * params["eval_every_timesteps"]
            write_progress(progress_path, rows, TRPO_COLUMNS)
            log(f"{env_id} seed {seed} | timesteps {steps:>10,d} | train return mean {tr['mean']:9.2f}"
                f" | eval {ev['eval_return_mean']:9.2f} | {row['wall_time_s']:8.1f} s")

    progress = Progress()
    setup_time = time.perf_counter() - t_setup
    t0 = time.perf_counter()  # wall_time_s: training and evaluation (setup is in run.json)
    try:
        model.learn(total_timesteps=params["timesteps"], callback=progress, log_interval=None)
        with atomic_output(out_dir / "policy.zip") as tmp:
            model.save(tmp)
        if params["normalize"]:
            with atomic_output(out_dir / "vecnormalize.pkl") as tmp:
                env.save(str(tmp))
        else:
            (out_dir / "vecnormalize.pkl").unlink(missing_ok=True)  # no stale stats from an earlier run
    finally:
        env.close()
        eval_env.close()

    info = collect(started)
    result = {"algo": "trpo", "env": env_id, "seed": seed, "config": params,
              "timesteps": int(model.num_timesteps), "episodes": progress.episodes,
              "wall_time_s": rows[-1]["wall_time_s"], "setup_time_s": setup_time,
              "final_eval_return_mean": _finite_or_none(rows[-1]["eval_return_mean"]), "threads": threads, **info}
    write_json(out_dir / "run.json", result)
    return result

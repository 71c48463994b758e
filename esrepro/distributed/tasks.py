"""What a host's worker processes run: episodes of antithetic pairs and of the evaluation, one
chunk at a time from their host's queue (``coordinator``, ``host_queue``).

A chunk carries only integers; the parameters and observation statistics of its version are read
from the host's file of that version (``host_state``). What comes back is scalars: returns, lengths
and the rare observation sums.
"""

import numpy as np

from esrepro.envs import ATARI
from esrepro.es.strategy import ask, eval_env_seed
from esrepro.rollout import rollouts
from esrepro.run_config import RunConfig

#: The kinds of episode a chunk holds: ("train", pair index, sign) with sign 0 for theta + sigma eps
#: and 1 for theta - sigma eps, or ("eval", episode) for the unperturbed parameters.
TRAIN, EVAL = "train", "eval"
#: The most MuJoCo episodes a worker steps side by side (``side_by_side``).
MLP_SIDE_BY_SIDE = 8


def side_by_side(config: RunConfig) -> int:
    """Episodes a worker steps side by side with one policy call per step. The MLP: up to
    ``MLP_SIDE_BY_SIDE`` (one compiled call for k rows shares its per-call cost, while the k
    simulator states compete for the core's caches: HalfCheetah-v5 at 0.88 of the replay of the
    same episodes at k = 1, 0.89 at 2, 0.91 at 4, 0.90-0.91 at 8, 0.75-0.86 at 40,
    ``benchmarks/rollout_throughput.py --side k``). The CNN: one, as its
    6.4 MB of dense weights per parameter vector stay in the CPU cache only one at a time
    (``benchmarks/cnn_forward.py``: 0.5 ms per row at k=1, ~0.9 ms at k >= 2)."""
    return 1 if config.kind is ATARI else MLP_SIDE_BY_SIDE


_RUNTIME: dict = {}


def _runtime(config: RunConfig, reference, n_envs: int):
    """This process's (``n_envs`` envs, policy) for ``config``; envs are built on first use and
    kept (an episode runs on its own env instance, so k episodes step side by side, each made
    ``like`` the first: MuJoCo's share its MjModel). An Atari policy holds its run's VBN batch, so
    it is kept per run seed."""
    key = (config.env_id, config.env, config.max_episode_steps, config.seed if config.kind is ATARI else None)
    make_env = config.kind.make_env
    if key not in _RUNTIME:
        env = make_env(config.env_id, config.env, config.max_episode_steps)
        _RUNTIME[key] = ([env], config.kind.make_policy(env, config.env, reference))
    envs, policy = _RUNTIME[key]
    envs += [make_env(config.env_id, config.env, config.max_episode_steps, like=envs[0])
             for _ in range(n_envs - len(envs))]
    return envs[:n_envs], policy


def run_episodes(config: RunConfig, reference, noise, params: tuple, iteration: int, items: list[tuple],
                 max_steps: int | None = None) -> list[tuple]:
    """Run the episodes ``items`` (all of one kind, ``TRAIN`` or ``EVAL``), side by side as
    ``side_by_side`` allows.

    Parameters
    ----------
    config : RunConfig
    reference : ndarray of uint8, shape (n, 4, 84, 84), or None
        The run's VBN reference batch (Atari).
    noise : NoiseTable
    params : tuple (theta, obs_mean, obs_std)
        The version's parameters (float32, shape (num_params,)) and observation statistics
        (float32, (obs_dim,); None for Atari).
    iteration : int
        The iteration whose pairs these are (training: ``ask(seed, iteration, j)``) or the version
        evaluated (evaluation: ``eval_env_seed(seed, iteration, e)``).
    items : list of ("train", j, sign) or ("eval", e)
    max_steps : int or None
        The iteration's adaptive episode cap (training episodes only).

    Returns
    -------
    list, one per item in order: ("train", j, sign, noise index, return, length, obs_sum, obs_sumsq)
    with the observation sums (float64, (obs_dim,)) or None, or ("eval", e, return, length).
    """
    theta, obs_mean, obs_std = params
    envs, policy = _runtime(config, reference, min(len(items), side_by_side(config)))
    if items[0][0] == EVAL:
        episodes = chunk_rollouts(envs, policy, np.tile(theta, (len(items), 1)), obs_mean, obs_std,
                                  [eval_env_seed(config.seed, iteration, e) for _, e in items])
        return [(EVAL, e, ep.ret, ep.length) for (_, e), ep in zip(items, episodes)]
    mujoco = None if config.kind is ATARI else config.env
    obs_norm_prob, action_noise_std = (mujoco.obs_norm_prob, mujoco.action_noise_std) if mujoco else (0.0, 0.0)
    pairs = {j: ask(config.seed, iteration, j, noise, theta.size, obs_norm_prob) for _, j, _ in items}
    eps = {j: config.sigma * noise.get(p.noise_index, theta.size) for j, p in pairs.items()}
    thetas = np.stack([theta + eps[j] if sign == 0 else theta - eps[j] for _, j, sign in items])
    episodes = chunk_rollouts(envs, policy, thetas, obs_mean, obs_std, [pairs[j].env_seed for _, j, _ in items],
                              action_noise_std, [pairs[j].action_rngs[sign] for _, j, sign in items],
                              [pairs[j].record_obs[sign] for _, j, sign in items], max_steps)
    return [(TRAIN, j, sign, pairs[j].noise_index, ep.ret, ep.length, ep.obs_sum, ep.obs_sumsq)
            for (_, j, sign), ep in zip(items, episodes)]


def chunk_rollouts(envs, policy, thetas, obs_mean, obs_std, env_seeds, action_noise_std=0.0, rngs=None,
                   record_obs=None, max_steps=None):
    """What a worker runs for a chunk: ``rollouts`` of the parameter rows ``thetas`` (float32, (n,
    num_params)), ``len(envs)`` episodes side by side at a time; the other arguments are per row
    (``env_seeds``, ``rngs``, ``record_obs``) or shared, as ``rollouts`` takes them. Returns n
    Episode in row order."""
    k, n = len(envs), len(thetas)
    rngs, record_obs = rngs or [None] * n, record_obs or [False] * n
    episodes = []
    for a in range(0, n, k):
        policy.set_params(thetas[a : a + k])
        episodes += rollouts(envs[: len(thetas[a : a + k])], policy, obs_mean, obs_std, env_seeds[a : a + k],
                             action_noise_std, rngs[a : a + k], record_obs[a : a + k], max_steps)
    return episodes

"""What runs on the Dask workers: chunks of antithetic pairs and evaluation episodes.

Tasks carry only integers and the run's ``RunConfig``; the parameters reach the workers as a
payload of ``esrepro.distributed.replicas`` (the run's ``communication`` setting), resolved into
``params`` before a task runs. What comes back is scalars: noise indices, returns, lengths and the
rare observation sums.
"""

import math

import numpy as np
from distributed import WorkerPlugin, get_worker

from esrepro.distributed.replicas import noise_plugin_name
from esrepro.envs import ATARI
from esrepro.es.noise import NoiseTable
from esrepro.es.strategy import ask, eval_env_seed
from esrepro.rollout import rollouts
from esrepro.run_config import RunConfig


class NoiseTablePlugin(WorkerPlugin):
    """Maps the shared noise table once per worker process (not once per task)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.table = None

    def setup(self, worker):
        self.table = NoiseTable(self.size, self.seed)


def chunks(start: int, stop: int, workers: int, chunk_pairs: int | None = None) -> list[tuple[int, int]]:
    """Pairs ``start..stop`` as (a, b) task ranges: ``chunk_pairs`` each, or by default decreasing
    sizes (guided scheduling): each chunk holds 1/(2 workers) of the pairs left, but at least
    1/(16 workers) of all, so the last tasks of an iteration are small and the workers finish
    together, with about 3-6 tasks per worker (``benchmarks/scheduling_bound.py``: with 1/(8
    workers), the Humanoid batch left 4% of 18 workers' and 9% of 144 workers' time idle at the end
    of an iteration; with 1/16, 1% and 6%). Results do not depend on the chunking."""
    if chunk_pairs:
        return [(a, min(a + chunk_pairs, stop)) for a in range(start, stop, chunk_pairs)]
    smallest = math.ceil((stop - start) / (16 * workers))
    ranges, a = [], start
    while a < stop:
        b = min(stop, a + max(smallest, math.ceil((stop - a) / (2 * workers))))
        ranges.append((a, b))
        a = b
    return ranges


def side_by_side(config: RunConfig) -> int:
    """Episodes a worker steps side by side with one batched policy call: all of a task's for the
    MLP; one for the CNN, whose 6.4 MB of dense weights per parameter vector stay in the CPU cache
    only one at a time (``benchmarks/cnn_forward.py``: 0.5 ms per row at k=1, ~0.9 ms at k >= 2)."""
    return 1 if config.kind is ATARI else 2**31


_RUNTIME: dict = {}


def _runtime(config: RunConfig, reference, n_envs: int):
    """This worker's (noise table, ``n_envs`` envs, policy) for ``config``; envs are built on first
    use and kept (an episode runs on its own env instance, so k episodes step side by side). An
    Atari policy holds its run's VBN batch, so it is kept per run seed."""
    key = (config.env_id, config.env, config.max_episode_steps, config.seed if config.kind is ATARI else None)
    make_env = config.kind.make_env
    if key not in _RUNTIME:
        env = make_env(config.env_id, config.env, config.max_episode_steps)
        _RUNTIME[key] = ([env], config.kind.make_policy(env, config.env, reference))
    envs, policy = _RUNTIME[key]
    envs += [make_env(config.env_id, config.env, config.max_episode_steps) for _ in range(n_envs - len(envs))]
    noise = get_worker().plugins[noise_plugin_name(config)].table
    return noise, envs[:n_envs], policy


# -- tasks ------------------------------------------------------------------------------------------
def _rollouts(envs, policy, thetas, obs_mean, obs_std, env_seeds, action_noise_std=0.0, rngs=None, record_obs=None,
              max_steps=None):
    """``rollouts`` of the parameter rows ``thetas``, ``len(envs)`` episodes side by side at a time."""
    k, n = len(envs), len(thetas)
    rngs, record_obs = rngs or [None] * n, record_obs or [False] * n
    episodes = []
    for a in range(0, n, k):
        policy.set_params(thetas[a : a + k])
        episodes += rollouts(envs[: len(thetas[a : a + k])], policy, obs_mean, obs_std, env_seeds[a : a + k],
                             action_noise_std, rngs[a : a + k], record_obs[a : a + k], max_steps)
    return episodes


def evaluate_pairs(config: RunConfig, reference, params: tuple, iteration: int, start: int, stop: int,
                   max_steps: int | None = None) -> dict:
    """Evaluate antithetic pairs ``start <= j < stop`` of ``iteration``, all 2(stop - start)
    episodes side by side (``rollouts``).

    Parameters
    ----------
    reference : ndarray of uint8, shape (n, 4, 84, 84), or None
        The run's VBN reference batch (Atari), scattered once per run.
    params : tuple (theta, obs_mean, obs_std)
        The iteration's parameters (float32, shape (num_params,)) and observation statistics
        (float32, (obs_dim,); None for Atari), from ``replicas.resolve``.
    max_steps : int or None
        The iteration's adaptive episode cap (``RunConfig.episode_cap_factor``), if any.

    Returns
    -------
    dict with ``noise_indices`` int64 (k,), ``returns`` float64 (k, 2) and ``lengths`` int64 (k, 2)
    (column 0: theta + sigma eps, column 1: theta - sigma eps), and ``obs``: a list of
    (pair index, obs_sum, obs_sumsq, count) for the recorded rollouts, in pair order.
    """
    theta, obs_mean, obs_std = params
    noise, envs, policy = _runtime(config, reference, min(2 * (stop - start), side_by_side(config)))
    mujoco = None if config.kind is ATARI else config.env
    obs_norm_prob, action_noise_std = (mujoco.obs_norm_prob, mujoco.action_noise_std) if mujoco else (0.0, 0.0)
    pairs = [ask(config.seed, iteration, j, noise, theta.size, obs_norm_prob) for j in range(start, stop)]
    eps = np.stack([config.sigma * noise.get(p.noise_index, theta.size) for p in pairs])
    episodes = _rollouts(envs, policy, np.stack([theta + eps, theta - eps], axis=1).reshape(-1, theta.size),
                         obs_mean, obs_std, [p.env_seed for p in pairs for _ in range(2)], action_noise_std,
                         [r for p in pairs for r in p.action_rngs], [rec for p in pairs for rec in p.record_obs],
                         max_steps)
    recorded = [(j, ep) for j, ep in zip(np.repeat(np.arange(start, stop), 2), episodes) if ep.obs_sum is not None]
    return {"noise_indices": np.array([p.noise_index for p in pairs], dtype=np.int64),
            "returns": np.array([ep.ret for ep in episodes]).reshape(-1, 2),
            "lengths": np.array([ep.length for ep in episodes], dtype=np.int64).reshape(-1, 2),
            "obs": [(int(j), ep.obs_sum, ep.obs_sumsq, ep.length) for j, ep in recorded]}


def evaluate_policy(config: RunConfig, reference, params: tuple, iteration: int, episodes: list[int]):
    """Deterministic evaluation (no perturbation, no action noise) of the parameters; Atari
    episodes start with up to ``noop_max`` random no-ops (the paper's protocol).

    ``params`` as ``evaluate_pairs``.

    Returns
    -------
    ndarray of float64, shape (len(episodes), 2): return and length of each episode.
    """
    theta, obs_mean, obs_std = params
    _, envs, policy = _runtime(config, reference, min(len(episodes), side_by_side(config)))
    results = _rollouts(envs, policy, np.tile(theta, (len(episodes), 1)), obs_mean, obs_std,
                        [eval_env_seed(config.seed, iteration, e) for e in episodes])
    return np.array([(ep.ret, ep.length) for ep in results], dtype=np.float64)

"""What runs on the Dask workers: chunks of antithetic pairs and evaluation episodes.

Tasks carry only integers and a small ``RunSpec``; the parameters arrive once per iteration as a
scattered payload, and what comes back is scalars: noise indices, returns, lengths and the rare
observation sums (DESIGN.md; paper Algorithm 2).
"""

from dataclasses import dataclass

import numpy as np
from distributed import WorkerPlugin, get_worker

from esrepro.envs import make_env
from esrepro.es.noise import NoiseTable
from esrepro.es.strategy import ask, eval_env_seed
from esrepro.policies import MLPPolicy
from esrepro.rollout import rollout


@dataclass(frozen=True)
class RunSpec:
    """The static part of a run that workers need; hashable, a few hundred bytes."""

    env_id: str
    run_seed: int
    sigma: float
    noise_table_size: int
    noise_seed: int
    hidden: tuple[int, ...]
    action_bins: int
    max_episode_steps: int | None
    obs_norm_prob: float
    action_noise_std: float

    @property
    def noise_plugin_name(self) -> str:
        return f"esrepro-noise-{self.noise_table_size}-{self.noise_seed}"


class NoiseTablePlugin(WorkerPlugin):
    """Builds the shared noise table once per worker process (not once per task)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.table = None

    def setup(self, worker):
        self.table = NoiseTable(self.size, self.seed)


def build_policy(spec: RunSpec, env) -> MLPPolicy:
    """The policy network of ``spec`` for ``env``'s observation and action spaces."""
    space = env.action_space
    return MLPPolicy(env.observation_space.shape[0], space.low, space.high, spec.hidden, spec.action_bins)


_RUNTIME: dict = {}


def _runtime(spec: RunSpec):
    """This worker's (noise table, env, policy) for ``spec``, built on first use."""
    key = (spec.env_id, spec.max_episode_steps, spec.hidden, spec.action_bins)
    if key not in _RUNTIME:
        env = make_env(spec.env_id, spec.max_episode_steps)
        _RUNTIME[key] = (env, build_policy(spec, env))
    noise = get_worker().plugins[spec.noise_plugin_name].table
    return (noise, *_RUNTIME[key])


def evaluate_pairs(spec: RunSpec, payload, iteration: int, start: int, stop: int) -> dict:
    """Evaluate antithetic pairs ``start <= j < stop`` of ``iteration``.

    Parameters
    ----------
    payload : tuple (theta, obs_mean, obs_std) of float32 arrays
        The iteration's parameters, shape (num_params,), and observation statistics, (obs_dim,).

    Returns
    -------
    dict with ``noise_indices`` int64 (k,), ``returns`` float64 (k, 2) and ``lengths`` int64 (k, 2)
    (column 0: theta + sigma eps, column 1: theta - sigma eps), and ``obs``: a list of
    (pair index, obs_sum, obs_sumsq, count) for the recorded rollouts, in pair order.
    """
    noise, env, policy = _runtime(spec)
    theta, obs_mean, obs_std = payload
    k = stop - start
    out = {"noise_indices": np.empty(k, dtype=np.int64), "returns": np.empty((k, 2)),
           "lengths": np.empty((k, 2), dtype=np.int64), "obs": []}
    for row, j in enumerate(range(start, stop)):
        pair = ask(spec.run_seed, iteration, j, noise, theta.size, spec.obs_norm_prob)
        eps = spec.sigma * noise.get(pair.noise_index, theta.size)
        out["noise_indices"][row] = pair.noise_index
        for col, sign in enumerate((1.0, -1.0)):
            policy.set_params(theta + sign * eps)
            ep = rollout(env, policy, obs_mean, obs_std, pair.env_seed, spec.action_noise_std,
                         pair.action_rngs[col], pair.record_obs[col])
            out["returns"][row, col] = ep.ret
            out["lengths"][row, col] = ep.length
            if ep.obs_sum is not None:
                out["obs"].append((j, ep.obs_sum, ep.obs_sumsq, ep.length))
    return out


def evaluate_policy(spec: RunSpec, payload, iteration: int, episodes: list[int]) -> np.ndarray:
    """Deterministic evaluation (no perturbation, no action noise) of the payload's parameters.

    Returns
    -------
    ndarray of float64, shape (len(episodes), 2): return and length of each episode.
    """
    _, env, policy = _runtime(spec)
    theta, obs_mean, obs_std = payload
    policy.set_params(theta)
    out = np.empty((len(episodes), 2))
    for row, e in enumerate(episodes):
        ep = rollout(env, policy, obs_mean, obs_std, eval_env_seed(spec.run_seed, iteration, e))
        out[row] = ep.ret, ep.length
    return out

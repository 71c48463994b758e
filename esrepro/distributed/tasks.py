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
from esrepro.rollout import rollouts


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


def _runtime(spec: RunSpec, n_envs: int):
    """This worker's (noise table, ``n_envs`` envs, policy) for ``spec``; envs are built on first
    use and kept (an episode runs on its own env instance, so k episodes step side by side)."""
    key = (spec.env_id, spec.max_episode_steps, spec.hidden, spec.action_bins)
    if key not in _RUNTIME:
        env = make_env(spec.env_id, spec.max_episode_steps)
        _RUNTIME[key] = ([env], build_policy(spec, env))
    envs, policy = _RUNTIME[key]
    envs += [make_env(spec.env_id, spec.max_episode_steps) for _ in range(n_envs - len(envs))]
    noise = get_worker().plugins[spec.noise_plugin_name].table
    return noise, envs[:n_envs], policy


def evaluate_pairs(spec: RunSpec, payload, iteration: int, start: int, stop: int) -> dict:
    """Evaluate antithetic pairs ``start <= j < stop`` of ``iteration``, all 2(stop - start)
    episodes side by side (``rollouts``).

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
    theta, obs_mean, obs_std = payload
    noise, envs, policy = _runtime(spec, 2 * (stop - start))
    pairs = [ask(spec.run_seed, iteration, j, noise, theta.size, spec.obs_norm_prob) for j in range(start, stop)]
    eps = np.stack([spec.sigma * noise.get(p.noise_index, theta.size) for p in pairs])
    policy.set_params(np.stack([theta + eps, theta - eps], axis=1).reshape(-1, theta.size))
    episodes = rollouts(envs, policy, obs_mean, obs_std, [p.env_seed for p in pairs for _ in range(2)],
                        spec.action_noise_std, [r for p in pairs for r in p.action_rngs],
                        [rec for p in pairs for rec in p.record_obs])
    recorded = [(j, ep) for j, ep in zip(np.repeat(np.arange(start, stop), 2), episodes) if ep.obs_sum is not None]
    return {"noise_indices": np.array([p.noise_index for p in pairs], dtype=np.int64),
            "returns": np.array([ep.ret for ep in episodes]).reshape(-1, 2),
            "lengths": np.array([ep.length for ep in episodes], dtype=np.int64).reshape(-1, 2),
            "obs": [(int(j), ep.obs_sum, ep.obs_sumsq, ep.length) for j, ep in recorded]}


def evaluate_policy(spec: RunSpec, payload, iteration: int, episodes: list[int]) -> np.ndarray:
    """Deterministic evaluation (no perturbation, no action noise) of the payload's parameters.

    Returns
    -------
    ndarray of float64, shape (len(episodes), 2): return and length of each episode.
    """
    theta, obs_mean, obs_std = payload
    _, envs, policy = _runtime(spec, len(episodes))
    policy.set_params(np.tile(theta, (len(episodes), 1)))
    results = rollouts(envs, policy, obs_mean, obs_std, [eval_env_seed(spec.run_seed, iteration, e) for e in episodes])
    return np.array([(ep.ret, ep.length) for ep in results], dtype=np.float64)

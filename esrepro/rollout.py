"""One episode of a policy: a pure function of (parameters, env seed, observation statistics,
action-noise stream), so any worker can run any rollout (DESIGN.md, determinism contract)."""

from dataclasses import dataclass

import numpy as np

from esrepro.es.obstat import normalize

#: Action noise is drawn for this many steps at a time (one generator call instead of one per step).
NOISE_BLOCK = 1000


@dataclass
class Episode:
    """Result of one rollout.

    Attributes
    ----------
    ret : float
        Undiscounted sum of rewards (no clipping).
    length : int
        Number of env steps (timesteps).
    obs_sum, obs_sumsq : ndarray of float64, shape (obs_dim,), or None
        Sums of the raw observations fed to the policy, when recorded.
    """

    ret: float
    length: int
    obs_sum: np.ndarray | None = None
    obs_sumsq: np.ndarray | None = None


def rollout(env, policy, obs_mean: np.ndarray, obs_std: np.ndarray, env_seed: int,
            action_noise_std: float = 0.0, rng: np.random.Generator | None = None,
            record_obs: bool = False) -> Episode:
    """Run one episode from ``env.reset(seed=env_seed)`` until termination or truncation.

    Parameters
    ----------
    env : gymnasium.Env
    policy : object with ``act(normalized_obs) -> action``, parameters already set
    obs_mean, obs_std : ndarray of float32, shape (obs_dim,)
        Observation statistics, fixed for the episode; the policy sees
        ``clip((obs - mean) / std, -5, 5)``.
    action_noise_std : float
        Std of Gaussian noise added to each action (reference code: 0.01 in training; 0 in
        evaluation and in the paper). Needs ``rng`` when positive.
    record_obs : bool
        Whether to return the sums of the observations (observation normalization).
    """
    obs, _ = env.reset(seed=env_seed)
    total, steps = 0.0, 0
    if record_obs:
        obs_sum = np.zeros(obs.shape, dtype=np.float64)
        obs_sumsq = np.zeros(obs.shape, dtype=np.float64)
    while True:
        if record_obs:
            obs_sum += obs
            obs_sumsq += np.square(obs, dtype=np.float64)
        action = policy.act(normalize(obs.astype(np.float32), obs_mean, obs_std))
        if action_noise_std:
            if steps % NOISE_BLOCK == 0:  # one generator call per block of steps, not one per step
                noise = action_noise_std * rng.standard_normal((NOISE_BLOCK, *action.shape), dtype=np.float32)
            action = action + noise[steps % NOISE_BLOCK]
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        if terminated or truncated:
            break
    if record_obs:
        return Episode(total, steps, obs_sum, obs_sumsq)
    return Episode(total, steps)

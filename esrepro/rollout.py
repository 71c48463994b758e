"""One episode of a policy: a pure function of (parameters, env seed, observation statistics,
action-noise stream), so any worker can run any rollout (docs/design.md, determinism contract)."""

from dataclasses import dataclass

import numpy as np

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


def rollouts(envs, policy, obs_mean: np.ndarray | None, obs_std: np.ndarray | None, env_seeds,
             action_noise_std: float = 0.0, rngs=None, record_obs=None,
             max_steps: int | None = None) -> list[Episode]:
    """Run ``len(envs)`` episodes side by side: episode i on ``envs[i]`` from
    ``reset(seed=env_seeds[i])`` with the policy's i-th parameters, until termination or truncation,
    or after ``max_steps`` steps (the adaptive episode cap, paper section 2.1) if given.

    Stepping the episodes together lets one policy call per step serve all of them (its per-call
    cost would otherwise be a noticeable part of a MuJoCo step). Each episode's result is
    bit-identical whatever the other episodes are (``MLPPolicy.act`` is row-independent).

    Parameters
    ----------
    envs : list of gymnasium.Env, k distinct instances
    policy : object with ``act(obs (k, *obs_shape)[, obs_mean, obs_std]) -> actions (k, ...)``, k
        parameter vectors loaded (``MLPPolicy``, ``CNNPolicy``)
    obs_mean, obs_std : ndarray of float32, shape (obs_dim,), or None
        Observation statistics, fixed for the episodes, handed to the policy, which normalizes
        (``MLPPolicy``: ``clip((obs - mean) / std, -5, 5)``). None: the raw observations (Atari).
    env_seeds : sequence of k int
    action_noise_std : float
        Std of Gaussian noise added to each action (reference code: 0.01 in training; 0 in
        evaluation and in the paper). Needs ``rngs`` (k generators) when positive.
    record_obs : sequence of k bool, optional
        Which episodes return the sums of their observations (observation normalization).
    max_steps : int, optional
        Steps after which an episode stops (as if truncated), on top of the env's own limit.

    Returns
    -------
    list of k Episode
    """
    k = len(envs)
    record_obs = record_obs if record_obs is not None else [False] * k
    obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(envs, env_seeds)])
    totals, lengths, noise = [0.0] * k, [0] * k, None
    sums = {i: (np.zeros(obs.shape[1]), np.zeros(obs.shape[1])) for i in range(k) if record_obs[i]}
    active, t = list(range(k)), 0  # the episodes step together: each active one has taken t steps
    while active:
        actions = policy.act(obs) if obs_mean is None else policy.act(obs, obs_mean, obs_std)
        if action_noise_std:
            if t % NOISE_BLOCK == 0:  # one generator call per episode and block of steps
                noise = np.zeros((NOISE_BLOCK, *actions.shape), dtype=np.float32)
                for i in active:
                    noise[:, i] = action_noise_std * rngs[i].standard_normal((NOISE_BLOCK, *actions.shape[1:]),
                                                                             dtype=np.float32)
            actions = actions + noise[t % NOISE_BLOCK]
        t += 1
        still = []
        for i in active:
            if i in sums:
                obs_sum, obs_sumsq = sums[i]
                obs_sum += obs[i]
                obs_sumsq += np.square(obs[i])
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            totals[i] += float(reward)
            if terminated or truncated or t == max_steps:
                lengths[i] = t
            else:
                still.append(i)
        active = still
    return [Episode(totals[i], lengths[i], *sums.get(i, (None, None))) for i in range(k)]


def rollout(env, policy, obs_mean: np.ndarray | None, obs_std: np.ndarray | None, env_seed: int,
            action_noise_std: float = 0.0, rng: np.random.Generator | None = None,
            record_obs: bool = False) -> Episode:
    """One episode of ``rollouts``: ``env``, one parameter vector loaded in ``policy``."""
    return rollouts([env], policy, obs_mean, obs_std, [env_seed], action_noise_std, [rng], [record_obs])[0]

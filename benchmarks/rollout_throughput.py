"""Rollout throughput: env-steps/s of ``esrepro.rollout.rollout`` versus raw ``env.step``.

What is measured (one process, one core):

* ``rollout``: whole episodes of ``esrepro.rollout.rollout`` with a 64-64 ``MLPPolicy`` (normc
  init), action noise std 0.01 from a ``numpy.random.Generator`` and observation normalization
  with arbitrary float32 mean/std arrays -- exactly what a Dask worker does per training episode.
* ``raw (random)``: ``env.reset(seed)`` then ``env.step`` with pre-drawn uniform random float32
  actions (drawn before timing, so the loop measures ``env.step`` and not the sampler), on an env
  made the same way (``esrepro.envs.make_env``).
* ``raw (replay)``: ``env.step`` replaying, from the same reset seeds, the very actions the policy
  took in the rollouts. MuJoCo's cost per step depends on the state (contacts): a cheetah driven
  by a near-zero normc policy lies on the ground with more contacts than one driven by uniform
  random actions, so this is the like-for-like baseline for the overhead of ``rollout`` itself.
* ``raw (sample)``: ``env.step(env.action_space.sample())``, for information only.

The variants are interleaved (rotating order) over several repetitions of ~20k steps each and the
medians are reported. Separately, microseconds per ``env.step`` and per policy step
(normalize + act, and with action noise) are timed in isolation.

Target: rollout steps/s / raw env.step steps/s >= 0.9.

    python benchmarks/rollout_throughput.py [--env HalfCheetah-v5] [--steps 20000] [--repeats 5]
"""

import argparse
import statistics
import time

import numpy as np

from esrepro.envs import make_env
from esrepro.es.obstat import normalize
from esrepro.policies import MLPPolicy
from esrepro.rollout import rollout

TARGET = 0.9


def episodes_rollout(env, policy, mean, std, seeds, noise_std):
    """Run ``rollout`` for each seed (action noise seeded by the seed); return total steps."""
    steps = 0
    for s in seeds:
        rng = np.random.default_rng(s)
        steps += rollout(env, policy, mean, std, s, noise_std, rng).length
    return steps


def episodes_raw(env, seeds, actions):
    """reset(seed) then step with ``actions[i]`` (a 2-D float32 array, consumed in order)."""
    i = 0
    for s in seeds:
        env.reset(seed=s)
        while True:
            _, _, terminated, truncated, _ = env.step(actions[i])
            i += 1
            if terminated or truncated:
                break
    return i


def episodes_sample(env, seeds):
    """reset(seed) then step with ``env.action_space.sample()``; return total steps."""
    steps = 0
    for s in seeds:
        env.reset(seed=s)
        env.action_space.seed(s)
        while True:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                break
    return steps


class Recorder:
    """Records actions passed to ``step`` (used once, untimed, to build the replay baseline)."""

    def __init__(self, env):
        self.env, self.actions = env, []
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def reset(self, **kw):
        return self.env.reset(**kw)

    def step(self, action):
        self.actions.append(np.array(action, dtype=np.float32))
        return self.env.step(action)


def per_call_us(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--steps", type=int, default=20000, help="env steps per repetition and variant (approx.)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--action-noise-std", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    env_roll, env_raw = make_env(args.env), make_env(args.env)
    obs_dim = env_roll.observation_space.shape[0]
    space = env_roll.action_space
    policy = MLPPolicy(obs_dim, space.low, space.high, (64, 64))
    rng = np.random.default_rng(args.seed)
    policy.set_params(policy.init_params(rng))
    mean = rng.standard_normal(obs_dim).astype(np.float32)
    std = rng.uniform(0.5, 2.0, obs_dim).astype(np.float32)

    # Episodes per repetition: measure one episode's length first.
    ep_len = rollout(env_roll, policy, mean, std, 0, args.action_noise_std, np.random.default_rng(0)).length
    n_eps = max(1, round(args.steps / ep_len))
    seed_sets = [list(range(1000 * (r + 1), 1000 * (r + 1) + n_eps)) for r in range(args.repeats)]

    # Pre-drawn uniform random actions and the replay actions (recorded untimed).
    rand_actions = [rng.uniform(space.low, space.high, (n_eps * ep_len + 10, space.shape[0])).astype(np.float32)
                    for _ in range(args.repeats)]
    replay_actions = []
    for seeds in seed_sets:
        rec = Recorder(make_env(args.env))
        episodes_rollout(rec, policy, mean, std, seeds, args.action_noise_std)
        replay_actions.append(np.stack(rec.actions))

    variants = {
        "rollout": lambda r: episodes_rollout(env_roll, policy, mean, std, seed_sets[r], args.action_noise_std),
        "raw (random)": lambda r: episodes_raw(env_raw, seed_sets[r], rand_actions[r]),
        "raw (replay)": lambda r: episodes_raw(env_raw, seed_sets[r], replay_actions[r]),
        "raw (sample)": lambda r: episodes_sample(env_raw, seed_sets[r]),
    }
    names = list(variants)
    rates = {k: [] for k in names}
    ratio_random, ratio_replay = [], []
    print(f"{args.env}: {args.repeats} interleaved repetitions of {n_eps} episodes x {ep_len} steps per variant")
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        this = {}
        for k in order:
            t = time.perf_counter()
            steps = variants[k](r)
            this[k] = steps / (time.perf_counter() - t)
            rates[k].append(this[k])
        ratio_random.append(this["rollout"] / this["raw (random)"])
        ratio_replay.append(this["rollout"] / this["raw (replay)"])
        print(f"  rep {r}: " + ", ".join(f"{k} {this[k]:8.0f}" for k in names) + " steps/s"
              f" | ratio vs random {ratio_random[-1]:.3f}, vs replay {ratio_replay[-1]:.3f}")

    # Component costs, timed in isolation.
    env_raw.reset(seed=1)
    obs = env_raw.step(rand_actions[0][0])[0]
    obs32 = obs.astype(np.float32)
    n = 20000
    acts = rand_actions[0]
    it = iter(range(10**9))

    def raw_step():
        _, _, te, tr, _ = env_raw.step(acts[next(it) % len(acts)])
        if te or tr:
            env_raw.reset()

    replayed = replay_actions[0]
    it2 = iter(range(10**9))
    env_raw.reset(seed=seed_sets[0][0])

    def replay_step():
        i = next(it2) % len(replayed)
        if i % ep_len == 0:
            env_raw.reset(seed=seed_sets[0][i // ep_len])
        env_raw.step(replayed[i])

    noise_rng = np.random.default_rng(1)
    action0 = np.zeros(space.shape, dtype=np.float32)
    comp = {
        "env.step (random actions)": per_call_us(raw_step, n),
        "env.step (policy's actions)": per_call_us(replay_step, n),
        "obs.astype(float32)": per_call_us(lambda: obs.astype(np.float32), n),
        "normalize": per_call_us(lambda: normalize(obs32, mean, std), n),
        "policy.act": per_call_us(lambda: policy.act(obs32), n),
        "normalize + act": per_call_us(lambda: policy.act(normalize(obs.astype(np.float32), mean, std)), n),
        "action noise draw + add": per_call_us(
            lambda: action0 + args.action_noise_std * noise_rng.standard_normal(space.shape, dtype=np.float32), n),
        "action_space.sample()": per_call_us(space.sample, n),
    }
    print("component costs (us per call, isolated):")
    for k, v in comp.items():
        print(f"  {k:30s} {v:7.2f}")

    med = {k: statistics.median(v) for k, v in rates.items()}
    print("medians (steps/s per worker): " + ", ".join(f"{k} {v:.0f}" for k, v in med.items()))
    print("  us/step: " + ", ".join(f"{k} {1e6 / v:.1f}" for k, v in med.items()))
    m_rand, m_rep = statistics.median(ratio_random), statistics.median(ratio_replay)
    verdict = lambda x: "MET" if x >= TARGET else "MISSED"
    print(f"SUMMARY rollout_throughput {args.env}: rollout/raw-env.step ratio = {m_rand:.3f} vs random actions "
          f"({verdict(m_rand)}), {m_rep:.3f} vs the policy's own actions replayed ({verdict(m_rep)}); "
          f"target >= {TARGET}")


if __name__ == "__main__":
    main()

"""Side by side or one at a time: how a worker should run its episodes, against the replay of the same
episodes, in one process.

A worker taking one episode at a time from its host's queue needs a cheap policy per step. The
package's policy step is one compiled call (``MLPPolicy.act``: normalization, the 64-64 tanh MLP,
clipping) for k rows; ``esrepro.rollout.rollouts`` steps k episodes side by side with one such call
per step (its per-call cost is shared by k episodes, but k simulator states compete for the caches).

For each variant, episodes of the same perturbed policies from the same seeds, and right after each
round the replay of the very actions they took (reset seed, then ``env.step`` of the recorded
actions, one episode after another): the ratio run / replay is measured within seconds of each
other, in rounds that rotate the variants; medians over ``--repeats`` rounds.

* ``side by side, k``: ``rollouts`` with k episodes (the package's path), k in ``--k``;
* ``one at a time, minimal loop``: a loop of nothing but the policy's step, the action noise and
  ``env.step``, one episode after another (a bound on what any Python episode loop can reach).

    .venv/bin/python benchmarks/episode_forward.py [--env HalfCheetah-v5] [--episodes 8] [--repeats 5]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: as esrepro.distributed.cluster sets in workers

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rollout_throughput import Recorder, run_raw  # noqa: E402

from esrepro.envs.mujoco import make_env  # noqa: E402
from esrepro.policies.mlp import MLPPolicy  # noqa: E402
from esrepro.rollout import NOISE_BLOCK, rollouts  # noqa: E402


def one_at_a_time(env, policy, mean, std, seed, noise_std, rng, record):
    """One episode of the loaded policy in a minimal loop; its length (actions appended to ``record``)."""
    obs, _ = env.reset(seed=seed)
    t, total, noise = 0, 0.0, None
    while True:
        if t % NOISE_BLOCK == 0:
            noise = noise_std * rng.standard_normal((NOISE_BLOCK, policy.action_dim), dtype=np.float32)
        action = policy.act(obs, mean, std) + noise[t % NOISE_BLOCK]
        record.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        t += 1
        if terminated or truncated:
            return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--episodes", type=int, default=8, help="episodes per variant and round")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8], help="side-by-side widths")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    probe = make_env(args.env)
    obs_dim, space = probe.observation_space.shape[0], probe.action_space
    policy = MLPPolicy(obs_dim, space.low, space.high, (64, 64))
    rng = np.random.default_rng(0)
    base = policy.init_params(rng)
    thetas = base + 0.02 * rng.standard_normal((args.episodes, base.size), dtype=np.float32)
    mean = rng.standard_normal(obs_dim).astype(np.float32) * 0.1
    std = rng.uniform(0.5, 2.0, obs_dim).astype(np.float32)
    envs = [Recorder(make_env(args.env)) for _ in range(max(args.k))]
    replay_env = make_env(args.env)
    seeds = list(range(args.episodes))

    def side_by_side(k):
        recorded = []
        for a in range(0, args.episodes, k):
            policy.set_params(thetas[a:a + k])
            group = envs[:len(thetas[a:a + k])]
            rollouts(group, policy, mean, std, seeds[a:a + k], 0.01, [np.random.default_rng(s) for s in seeds[a:a + k]])
            recorded += [np.stack(env.actions) for env in group]
        return recorded

    def minimal():
        recorded = []
        for theta, seed in zip(thetas, seeds):
            actions = []
            policy.set_params(theta)
            one_at_a_time(replay_env, policy, mean, std, seed, 0.01, np.random.default_rng(seed), actions)
            recorded.append(np.stack(actions))
        return recorded

    variants = {f"side by side, k={k}": (lambda k=k: side_by_side(k)) for k in args.k}
    variants["one at a time, minimal loop"] = minimal
    minimal()  # warms up
    ratios = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            recorded = variants[name]()
            run = time.perf_counter() - t0
            steps = sum(len(a) for a in recorded)
            t0 = time.perf_counter()
            for seed, actions in zip(seeds, recorded):
                run_raw(replay_env, seed, actions)
            ratios[name].append((time.perf_counter() - t0) / run)
    print(f"{args.env}, 64-64 policy, {args.episodes} episodes per variant and round ({steps} steps in the last), "
          f"medians of {args.repeats} rounds")
    print("| variant | run / replay of its own episodes (min-max) |")
    print("|---|---|")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}) |")
    best = max(ratios, key=lambda n: statistics.median(ratios[n]))
    print(f"SUMMARY episode_forward {args.env}: best {best} at {statistics.median(ratios[best]):.3f} of the replay")


if __name__ == "__main__":
    main()

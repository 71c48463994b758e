"""ES agent-steps/s per worker on Atari versus the preprocessed env stepped alone.

What is measured (one process, one core, BLAS pools of one thread as in a Dask worker):

* ``ES rollout``: what a worker does per training episode (``esrepro.distributed.tasks``): load one
  perturbed parameter vector into the large A3C ``CNNPolicy`` (``set_params``, which computes the
  VBN statistics on the 128-observation reference batch) and run one whole episode of
  ``esrepro.rollout.rollout`` (argmax actions) from a seeded reset.
* ``env alone``: the same env stack (``esrepro.envs.atari.make_atari_env``: frame_skip 4, up to 30
  no-ops, 84x84 gray, 4 stacked frames) from the same seeded resets, stepped with pre-drawn
  uniformly random actions for as many steps as the ES episode had.

The two alternate episode by episode, so that load changes on a shared machine hit both alike;
the totals over ``--episodes`` rounds are reported.

Target: ES agent-steps/s / env-alone agent-steps/s >= 0.5 (the CNN costs no more than the emulator).

    python benchmarks/atari_throughput.py [--game Pong] [--episodes 6] [--network large]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: as esrepro.distributed.cluster sets in workers

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from esrepro.envs.atari import atari_env_id, make_atari_env, reference_batch  # noqa: E402
from esrepro.policies.cnn import CNNPolicy  # noqa: E402
from esrepro.rollout import rollout  # noqa: E402

TARGET = 0.5


def es_episode(env, policy, theta, seed) -> tuple[int, float]:
    """(agent steps, seconds) of one ES training episode, parameter loading included."""
    t0 = time.perf_counter()
    policy.set_params(theta)
    steps = rollout(env, policy, None, None, seed).length
    return steps, time.perf_counter() - t0


def random_episode(env, actions, seed) -> tuple[int, float]:
    """(agent steps, seconds) of stepping ``env`` from ``reset(seed)`` with ``actions``."""
    t0 = time.perf_counter()
    env.reset(seed=seed)
    steps = 0
    for action in actions:
        steps += 1
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--game", default="Pong")
    ap.add_argument("--episodes", type=int, default=6, help="rounds of one ES and one env-alone episode")
    ap.add_argument("--network", default="large", choices=["large", "small"])
    args = ap.parse_args()
    env_id = atari_env_id(args.game)
    env = make_atari_env(env_id, frame_skip=4, noop_max=30)
    t0 = time.perf_counter()
    reference = reference_batch(env_id, 4, 30, 128, seed=0)
    print(f"{args.game}: reference batch of 128 observations collected in {time.perf_counter() - t0:.1f} s "
          "(once per run)")
    policy = CNNPolicy(env.action_space.n, args.network, reference)
    rng = np.random.default_rng(0)
    theta = policy.init_params(rng)
    totals = {"ES rollout": [0, 0.0], "env alone": [0, 0.0]}
    for i in range(args.episodes):
        perturbed = theta + 0.02 * rng.standard_normal(theta.size, dtype=np.float32)
        steps, seconds = es_episode(env, policy, perturbed, seed=i)
        actions = rng.integers(env.action_space.n, size=steps)
        for name, (n, s) in (("ES rollout", (steps, seconds)), ("env alone", random_episode(env, actions, i))):
            totals[name][0] += n
            totals[name][1] += s
    rates = {name: n / s for name, (n, s) in totals.items()}
    for name, (n, s) in totals.items():
        print(f"{name:>12}: {n:>7,d} agent steps in {s:6.1f} s = {rates[name]:7.0f} steps/s")
    ratio = rates["ES rollout"] / rates["env alone"]
    print(f"SUMMARY atari_throughput: ES / env-alone agent-steps/s = {ratio:.2f} "
          f"(target >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()

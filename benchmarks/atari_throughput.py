"""ES agent-steps/s per worker on Atari versus the preprocessed env stepped alone, in the same seconds.

What is measured (one process, one core, BLAS and OpenCV pools of one thread as in a Dask worker):

* ``ES``: what a worker does per training episode (``esrepro.rollout.rollouts`` with one episode,
  as ``esrepro.distributed.tasks`` runs the CNN): load one perturbed parameter vector into the
  A3C ``CNNPolicy`` (``set_params``, which computes the VBN statistics on the 128-observation
  reference batch), then from a seeded reset step the env with the argmax action of each
  observation, episode after episode;
* ``env alone``: the same env stack (``esrepro.envs.atari.make_atari_env``: frame_skip 4, up to 30
  no-ops, 84x84 gray, 4 stacked frames) on a second env from the same seeded resets, stepped with
  uniformly random actions.

The machine's speed swings by +-20% from one second to the next, so the two alternate in blocks of
``--block`` agent steps (each block timed on its own; an ES block that starts an episode includes
its ``set_params``), and the ratio of the two rates is computed over the blocks of each round of
``--round`` steps; the median over rounds and its spread are reported.

Target: ES agent-steps/s / env-alone agent-steps/s >= 0.6 with the large network.

The ceiling of any implementation of the network on this core (``floor``): per agent step the
forward's multiply-adds at this core's best single-thread BLAS rate (a 1024-square float32 matmul,
best of 10) for the convolutions and the output layer, the dense layer at the rate of its own hot
matrix-vector product (its float32 weights, 6.4 MB for the large network, are read once per step and
do not fit a core's L2), and the VBN reference pass of ``set_params`` at the BLAS rate, once per
episode (the episodes' mean length in each round). Nothing else (activation copies, VBN and ReLU,
argmax, Python) is counted, so the ratio env / (env + floor), per round, is an upper bound for the ES
side's ratio. (Sharing theta's pass over the dense weights among k episodes, (theta + s eps) x =
theta x + s (eps x), leaves one read of eps per pair but doubles the dense layer's multiply-adds:
at best their time at the BLAS rate, ~10 us under the hot read counted here.)

    python benchmarks/atari_throughput.py [--game Pong] [--rounds 8] [--network large]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "OPENCV_FOR_THREADS_NUM"):
    os.environ[_var] = "1"  # before numpy loads: as esrepro.distributed.cluster sets in workers

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from esrepro.envs.atari import atari_env_id, make_atari_env, reference_batch  # noqa: E402
from esrepro.policies.cnn import CNNPolicy  # noqa: E402

TARGET = 0.6


def es_blocks(env, policy, theta, rng, block):
    """Endless ES episodes (``set_params`` on a new perturbation, then argmax actions), as a
    generator yielding (agent steps, seconds, episodes begun) per block of at most ``block`` steps."""
    seed = 0
    while True:
        t0 = time.perf_counter()
        policy.set_params(theta + 0.02 * rng.standard_normal(theta.size, dtype=np.float32))
        obs, _ = env.reset(seed=seed)
        done, steps, begun = False, 0, 1
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            done, steps = terminated or truncated, steps + 1
            if done or steps == block:
                yield steps, time.perf_counter() - t0, begun
                t0, steps, begun = time.perf_counter(), 0, 0
        seed += 1


def alone_blocks(env, rng, block):
    """The env alone from the same seeded resets with random actions, as ``es_blocks`` yields."""
    seed = 0
    while True:
        t0 = time.perf_counter()
        env.reset(seed=seed)
        done, steps = False, 0
        while not done:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            done, steps = terminated or truncated, steps + 1
            if done or steps == block:
                yield steps, time.perf_counter() - t0, 0
                t0, steps = time.perf_counter(), 0
        seed += 1


def best_seconds(f, repeats=10):
    """The fastest of ``repeats`` calls of ``f`` (after one untimed call)."""
    f()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def floor_seconds(policy, n_reference):
    """(seconds per agent step, seconds per episode) that no implementation of ``policy``'s network
    beats on this core (module docstring): its multiply-adds at the best BLAS rate, the dense layer at
    its hot matrix-vector rate."""
    a, b = np.ones((1024, 1024), np.float32), np.ones((1024, 1024), np.float32)
    per_mac = best_seconds(lambda: a @ b) / 1024**3
    dense = next(layer for layer in policy.layers if layer.dense)
    weights, x = np.ones((dense.fan_in, dense.channels_out), np.float32), np.ones((1, dense.fan_in), np.float32)
    macs = {layer: layer.size_out**2 * layer.fan_in * layer.channels_out for layer in policy.layers}
    step = (sum(m for layer, m in macs.items() if layer is not dense) * per_mac
            + best_seconds(lambda: x @ weights, 50))
    return step, n_reference * sum(m for layer, m in macs.items() if layer.hidden) * per_mac


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--game", default="Pong")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of --round agent steps per side")
    ap.add_argument("--round", type=int, default=400, help="agent steps per side and round")
    ap.add_argument("--block", type=int, default=50, help="agent steps per alternating block")
    ap.add_argument("--network", default="large", choices=["large", "small"])
    args = ap.parse_args()
    env_id = atari_env_id(args.game)
    env, alone = make_atari_env(env_id, frame_skip=4, noop_max=30), make_atari_env(env_id, frame_skip=4, noop_max=30)
    t0 = time.perf_counter()
    reference = reference_batch(env_id, 4, 30, 128, seed=0)
    print(f"{args.game}, {args.network} network: reference batch of 128 observations collected in "
          f"{time.perf_counter() - t0:.1f} s (once per run); {args.rounds} rounds of {args.round} agent steps per "
          f"side, alternating in blocks of {args.block}")
    policy = CNNPolicy(env.action_space.n, args.network, reference)
    rng = np.random.default_rng(0)
    sides = {"ES": es_blocks(env, policy, policy.init_params(rng), rng, args.block),
             "env alone": alone_blocks(alone, np.random.default_rng(1), args.block)}
    next(sides["ES"]), next(sides["env alone"])  # warm-up blocks
    floor_step, floor_episode = floor_seconds(policy, len(reference))
    print(f"floor (module docstring): {floor_step * 1e6:.0f} us per agent step, {floor_episode * 1e3:.1f} ms per "
          "episode (VBN reference pass)")
    ratios, ceilings, totals = [], [], {name: [0, 0.0, 0] for name in sides}
    for r in range(args.rounds):
        done = {name: [0, 0.0, 0] for name in sides}
        while min(n for n, _, _ in done.values()) < args.round:
            for name, blocks in sides.items():
                for i, x in enumerate(next(blocks)):
                    done[name][i] += x
        rates = {name: n / s for name, (n, s, _) in done.items()}
        ratios.append(rates["ES"] / rates["env alone"])
        steps, _, episodes = done["ES"]
        env_step = 1 / rates["env alone"]
        ceilings.append(env_step / (env_step + floor_step + floor_episode * episodes / steps))
        for name, counts in done.items():
            totals[name] = [t + c for t, c in zip(totals[name], counts)]
        print(f"  round {r}: ES {rates['ES']:6.0f}, env alone {rates['env alone']:6.0f} agent steps/s, "
              f"ratio {ratios[-1]:.2f}, ceiling {ceilings[-1]:.2f}", flush=True)
    for name, (n, s, _) in totals.items():
        print(f"{name:>10}: {n:>7,d} agent steps in {s:6.1f} s = {n / s:7.0f} steps/s")
    ratio = float(np.median(ratios))
    print(f"SUMMARY atari_throughput {args.game} {args.network}: ratio={ratio:.2f} (ES / env-alone agent-steps/s, "
          f"median of {args.rounds} rounds, {min(ratios):.2f}-{max(ratios):.2f}; target >= {TARGET}: "
          f"{'met' if ratio >= TARGET else 'MISSED'}); ceiling of any implementation on this core "
          f"{np.median(ceilings):.2f}")


if __name__ == "__main__":
    main()

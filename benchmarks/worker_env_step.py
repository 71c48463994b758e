"""Bare ``env.step`` inside a Dask worker's task against the same loop in a plain spawned process.

A worker runs its tasks in a thread beside its event loop (heartbeats, the profiler's sampling,
memory monitoring). This measures what that costs the simulator: the same loop (``make_env``,
1,000 pre-drawn uniform random actions, CPU time of the stepping thread) runs for ``--seconds`` in
turn as a task on a one-worker LocalCluster (``esrepro.distributed.cluster.connect``) and in a
spawned process, ``--rounds`` times, the order alternating; the per-round ratio cancels the machine's
changes of speed from one second to the next. Nothing else runs meanwhile.

    python benchmarks/worker_env_step.py [--env HalfCheetah-v5] [--rounds 20] [--seconds 0.5]
"""

import argparse
import logging
import multiprocessing
import statistics
import time

import numpy as np

from esrepro.distributed.cluster import connect
from esrepro.envs.mujoco import make_env


def steps_per_cpu_s(env_id: str, seconds: float) -> float:
    """Env steps per CPU second of this thread, stepping with random actions for ``seconds``."""
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    actions = np.random.default_rng(0).uniform(low, high, (1000, low.size)).astype(np.float32)
    env.reset(seed=0)
    steps, start, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated or truncated:
                env.reset()
    return steps / (time.thread_time() - cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.5, help="stepping time per measurement")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    rates = {"worker": [], "process": []}
    with multiprocessing.get_context("spawn").Pool(1) as pool, connect(1) as client:
        run = {"worker": lambda s: client.submit(steps_per_cpu_s, args.env, s, pure=False).result(),
               "process": lambda s: pool.apply(steps_per_cpu_s, (args.env, s))}
        for where in run:
            run[where](0.2)  # warm-up: imports, env construction
        for r in range(args.rounds):
            for where in sorted(run, reverse=r % 2 == 1):
                rates[where].append(run[where](args.seconds))
    ratios = [w / p for w, p in zip(rates["worker"], rates["process"])]
    for where, values in rates.items():
        print(f"{where:>8}: median {statistics.median(values):,.0f} env steps per CPU s "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")
    print(f"SUMMARY worker_env_step {args.env}: in a Dask worker's task, env.step runs at "
          f"{statistics.median(ratios):.2f}x of a plain process (per-round median over {args.rounds} rounds; "
          f"range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()

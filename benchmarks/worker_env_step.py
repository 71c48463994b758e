"""Bare ``env.step`` inside a Dask worker's task against the same loop in a plain spawned process.

A worker runs its tasks in a thread beside its event loop (its tick, heartbeats, memory monitoring)
and its profiler, which samples the task thread's stack; each of them takes the GIL when it wakes.
This measures what that costs the simulator: the same loop (``make_env``, 1,000 pre-drawn uniform
random actions) runs for ``--seconds`` in turn as a task on a one-worker LocalCluster with
distributed's defaults (profile every 10 ms, tick every 20 ms), as a task on one with esrepro's
settings (``esrepro.distributed.cluster.WORKER_DASK_CONFIG``), and in a spawned process,
``--rounds`` times, the order rotating. It reports the stepping thread's env steps per wall second
and its time on the CPU (thread CPU time / wall time); the per-round ratios to the plain process
cancel the machine's changes of speed from one second to the next. Nothing else runs meanwhile.

    python benchmarks/worker_env_step.py [--env HalfCheetah-v5] [--rounds 20] [--seconds 0.5]
"""

import argparse
import contextlib
import logging
import multiprocessing
import statistics
import time

import dask
import numpy as np
from distributed import Client, LocalCluster

from esrepro.distributed.cluster import SINGLE_THREAD_ENV, WORKER_DASK_CONFIG
from esrepro.envs.mujoco import make_env


def step_rates(env_id: str, seconds: float) -> tuple[float, float]:
    """(env steps per wall second, fraction of the wall time this thread was on the CPU), stepping
    with random actions for ``seconds``."""
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
    wall = time.perf_counter() - start
    return steps / wall, (time.thread_time() - cpu) / wall


def one_worker(stack: contextlib.ExitStack, config: dict) -> Client:
    """A client of a one-worker LocalCluster (single-threaded, BLAS pinned) with the Dask settings
    ``config``."""
    with dask.config.set(config):  # the nanny passes the caller's config to its worker
        cluster = stack.enter_context(LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                   env=SINGLE_THREAD_ENV))
    return stack.enter_context(Client(cluster))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.5, help="stepping time per measurement")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(1))
        clients = {"worker, distributed's defaults": one_worker(stack, {}),
                   "worker, esrepro's WORKER_DASK_CONFIG": one_worker(stack, WORKER_DASK_CONFIG)}
        run = {name: lambda s, c=c: c.submit(step_rates, args.env, s, pure=False).result()
               for name, c in clients.items()}
        run["plain process"] = lambda s: pool.apply(step_rates, (args.env, s))
        for measure in run.values():
            measure(0.2)  # warm-up: imports, env construction
        results = {name: [] for name in run}
        names = list(run)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                results[name].append(run[name](args.seconds))
    plain = results["plain process"]
    print(f"{args.env}, {args.rounds} rounds of {args.seconds} s each; medians")
    print(f"{'':>36} {'steps/s':>8} {'on CPU':>7} {'steps/s vs plain (per round)':>29}")
    for name, values in results.items():
        ratio = statistics.median(v[0] / p[0] for v, p in zip(values, plain))
        print(f"{name:>36} {statistics.median(v[0] for v in values):>8,.0f} "
              f"{statistics.median(v[1] for v in values):>7.3f} {ratio:>29.2f}")
    on_cpu = {name: statistics.median(v[1] for v in values) for name, values in results.items()}
    print(f"SUMMARY worker_env_step {args.env}: the task thread is on the CPU "
          + ", ".join(f"{on_cpu[name]:.3f} of the time in a {name}" for name in names))


if __name__ == "__main__":
    main()

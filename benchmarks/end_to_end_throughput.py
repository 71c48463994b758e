"""End-to-end throughput: env steps/s per worker inside a real ES run, against a bare ``env.step`` loop.

What is measured, for each worker count W in ``--workers`` (default 1 and 2):

* ``bare``: W processes at once, each stepping its own env (``esrepro.envs.mujoco.make_env``) with
  pre-drawn uniform random actions for ``--seconds``: env steps/s per process. Measured beside the run
  in the same sitting with W processes stepping together, so both sides share the machine alike.
* ``run``: a real ES run (``esrepro.train.Trainer`` on a LocalCluster of W single-threaded workers,
  ``--pairs`` antithetic pairs per iteration, no evaluation episodes), ``--iterations`` timed
  iterations after ``--warmup``: timesteps / wall time / W = env steps/s per worker.

ratio = run / bare. Where the rest goes, as fractions of the workers' time (W x wall):

* ``rollout loop``: inside the tasks (Dask's "compute" time of ``evaluate_pairs``), the part beyond
  what bare ``env.step`` needs for the same steps (policy, observation normalization, action noise,
  the episode loop);
* ``between tasks``: a worker's gaps between its tasks inside an iteration (task handling,
  scheduling, transfer of results and parameters);
* ``idle at the end``: from a worker's last task of an iteration to the end of the iteration (waiting
  for the slowest task; the master's update and bookkeeping);
* and, separately, the CPU seconds per iteration of this process (the ES master, the Dask client and
  the LocalCluster's scheduler share it).

    python benchmarks/end_to_end_throughput.py [--env HalfCheetah-v5] [--pairs 20] [--workers 1 2]
                                               [--iterations 5] [--warmup 2] [--seconds 5]
"""

import argparse
import logging
import multiprocessing
import tempfile
import time
import warnings

import numpy as np
import psutil
from distributed import get_task_stream

from esrepro.config import run_params
from esrepro.distributed.cluster import connect
from esrepro.envs.mujoco import make_env
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

TARGET = 0.85


def _bare_steps_per_s(args):
    """Env steps/s of ``env.step`` with pre-drawn random actions, in this process."""
    env_id, seconds, seed = args
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, (100_000, low.size)).astype(np.float32)
    env.reset(seed=seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions[:1000]:
            _, _, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated or truncated:
                env.reset()
    return steps / (time.perf_counter() - start)


def bare(env_id, workers, seconds):
    """Mean env steps/s per process with ``workers`` processes stepping at once."""
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return float(np.mean(pool.map(_bare_steps_per_s, [(env_id, seconds, k) for k in range(workers)])))


def run(env_id, workers, args):
    """(env steps/s per worker, breakdown dict) of a real run's timed iterations."""
    params = run_params(None, env_id, overrides={"iterations": 10**6, "pairs_per_iteration": args.pairs,
                                                 "eval_episodes": 0})
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as out, connect(workers) as client:
        trainer = Trainer(RunConfig.from_params(env_id, 0, params), out, log=lambda *_: None)
        trainer.connect(client)
        for _ in range(args.warmup):
            trainer.step()
        compute = between = idle = wall = master_cpu = 0.0
        steps = 0
        for _ in range(args.iterations):
            with get_task_stream(client) as ts:
                cpu0, t0, s0 = me.cpu_times(), time.time(), trainer.timesteps
                trainer.step()
                t1, cpu1 = time.time(), me.cpu_times()
            steps += trainer.timesteps - s0
            wall += t1 - t0
            master_cpu += (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            spans = {}
            for task in ts.data:
                if task["key"].startswith("evaluate_pairs"):
                    for s in task["startstops"]:
                        if s["action"] == "compute":
                            spans.setdefault(task["worker"], []).append((s["start"], s["stop"]))
            for worker_spans in spans.values():
                busy = sum(b - a for a, b in worker_spans)
                last = max(b for _, b in worker_spans)
                compute += busy
                idle += t1 - last
                between += (last - t0) - busy
            idle += (workers - len(spans)) * (t1 - t0)  # a worker without any task idled all along
    return steps / wall / workers, {"compute": compute, "between": between, "idle": idle, "wall": wall,
                                    "steps": steps, "master_cpu_per_iteration": master_cpu / args.iterations}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--pairs", type=int, default=20, help="antithetic pairs per iteration")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iterations", type=int, default=5, help="timed iterations per worker count")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    ap.add_argument("--seconds", type=float, default=5.0, help="bare env.step time per measurement")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"{args.env}, 64-64 policy, {args.pairs} pairs per iteration, no evaluation episodes; "
          f"{args.iterations} timed iterations after {args.warmup}")
    print(f"{'W':>2} {'bare steps/s':>13} {'run steps/s':>12} {'ratio':>6} | share of W x wall: "
          f"{'env.step':>8} {'loop':>6} {'between':>8} {'idle end':>8} | master CPU s/iter")
    ratios = {}
    for w in args.workers:
        raw_before = bare(args.env, w, args.seconds / 2)
        per_worker, b = run(args.env, w, args)
        raw = (raw_before + bare(args.env, w, args.seconds / 2)) / 2  # around the run, as the load drifts
        total = w * b["wall"]
        env_share = b["steps"] / raw / total  # what bare env.step needs for the run's steps
        ratios[w] = per_worker / raw
        print(f"{w:>2} {raw:>13,.0f} {per_worker:>12,.0f} {ratios[w]:>6.2f} | {'':>18}{env_share:>8.2f} "
              f"{b['compute'] / total - env_share:>6.2f} {b['between'] / total:>8.2f} {b['idle'] / total:>8.2f} | "
              f"{b['master_cpu_per_iteration']:.3f}")
    worst = min(ratios, key=ratios.get)
    status = "met" if ratios[worst] >= TARGET else "MISSED"
    print(f"SUMMARY end_to_end_throughput {args.env}: ratio "
          + ", ".join(f"W={w} {r:.2f}" for w, r in ratios.items()) + f" (target {TARGET}): {status}")


if __name__ == "__main__":
    main()

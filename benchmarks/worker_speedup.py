"""Worker speedup: wall time of one ES iteration on 2 Dask workers versus 1, same population.

What is measured: ``esrepro.train.Trainer.step()`` (population of ``--pairs`` antithetic pairs,
no evaluation episodes) on a fresh ``esrepro.distributed.cluster.connect(workers)`` LocalCluster
of 1 and of 2 single-threaded worker processes. Per cluster, one warm-up step is run first and not
timed (worker env creation and the noise-table plugin's table build happen there; it uses 2 pairs
per worker to save time), then ``--steps`` steps are timed. 1-worker and 2-worker clusters
alternate (order swapped every round) for ``--repeats`` rounds so that machine-load drifts hit
both alike; the medians, the ratio of medians and the median of the per-round ratios are printed.

For the analysis of a miss: the workers' CPU time (psutil) per pair (whether the pairs themselves
got slower, i.e. the workers competed for the cores) and per wall second: the number of cores the
workers actually got. From it, an
estimate of the speedup with a whole core per worker (wall time scaled by the CPU share) is
printed too; it is not a measurement.

Target: speedup = t(1 worker) / t(2 workers) >= 1.85 (on a machine with >= 2 free cores).

    python benchmarks/worker_speedup.py [--env HalfCheetah-v5] [--hidden 64 64] [--pairs 40] [--repeats 2] [--steps 2]
    python benchmarks/worker_speedup.py --env Humanoid-v5 --hidden 256 256   # the scaling experiment's setting
"""

import argparse
import dataclasses
import logging
import os
import statistics
import tempfile
import time
import warnings

import psutil

from esrepro.config import run_params
from esrepro.distributed.cluster import connect
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

TARGET = 1.85


def _cpu_seconds(procs):
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def measure(workers, args, out_dir):
    """Timed ``Trainer.step()`` wall times on a new cluster of ``workers``; plus the CPU the workers
    and this process (client and scheduler) used."""
    params = run_params(None, args.env, overrides={"iterations": 1, "eval_episodes": 0,
                                                   "pairs_per_iteration": args.pairs, "hidden": args.hidden})
    config = RunConfig.from_params(args.env, 0, params)
    with connect(workers) as client:
        trainer = Trainer(config, out_dir, log=lambda *_: None)
        trainer.connect(client)
        # Warm-up step (env creation, noise table): a small population, 2 pairs per worker, so that it
        # costs little; the timed steps use the full population.
        trainer.config = dataclasses.replace(config, pairs_per_iteration=2 * workers)
        trainer.step()
        trainer.config = config
        worker_procs = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        main_proc = [psutil.Process()]  # client and scheduler (LocalCluster runs it in this process)
        times, worker_cpu, main_cpu = [], 0.0, 0.0
        for _ in range(args.steps):
            c0, m0 = _cpu_seconds(worker_procs), _cpu_seconds(main_proc)
            t = time.perf_counter()
            trainer.step()
            times.append(time.perf_counter() - t)
            worker_cpu += _cpu_seconds(worker_procs) - c0
            main_cpu += _cpu_seconds(main_proc) - m0
        trainer.workers.close()
    wall = sum(times)
    stats = {"worker_cores": worker_cpu / wall, "cpu_per_pair": worker_cpu / (args.pairs * args.steps),
             "main_cores": main_cpu / wall}
    return times, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64],
                    help="hidden layers of the MLP (the scaling experiment's Humanoid: 256 256)")
    ap.add_argument("--pairs", type=int, default=40, help="antithetic pairs per iteration (2 episodes each)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds, each with a 1-worker and a 2-worker cluster")
    ap.add_argument("--steps", type=int, default=2, help="timed iterations per cluster (after 1 warm-up)")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Port .* is already in use")

    times = {1: [], 2: []}
    stats = {1: [], 2: []}
    round_ratios = []
    print(f"{args.env}: {args.pairs} pairs = {2 * args.pairs} episodes per iteration; "
          f"{args.repeats} rounds x {args.steps} timed iterations per cluster; cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            this = {}
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                load = os.getloadavg()[0]
                t, s = measure(w, args, os.path.join(tmp, f"r{r}w{w}"))
                this[w] = statistics.median(t)
                times[w] += t
                stats[w].append(s)
                print(f"  round {r} workers {w}: iteration s " + " ".join(f"{x:.2f}" for x in t)
                      + f" | {s['cpu_per_pair'] * 1e3:.0f} ms of worker CPU per pair"
                        f" | CPU cores used: workers {s['worker_cores']:.2f}, client+scheduler {s['main_cores']:.2f}"
                        f" | load avg before {load:.1f}",
                      flush=True)
            round_ratios.append(this[1] / this[2])
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    cpu_pair = {w: statistics.median(s["cpu_per_pair"] for s in stats[w]) for w in (1, 2)}
    cores = {w: statistics.median(s["worker_cores"] for s in stats[w]) for w in (1, 2)}
    print(f"median iteration time: 1 worker {m1:.2f} s, 2 workers {m2:.2f} s")
    print(f"worker CPU per pair: 1 worker {cpu_pair[1] * 1e3:.0f} ms, 2 workers {cpu_pair[2] * 1e3:.0f} ms")
    print(f"CPU cores the workers actually got: 1 worker {cores[1]:.2f}, 2 workers {cores[2]:.2f} "
          f"(2 free cores would give ~2.0; less means other processes shared the cores)")
    print("per-round speedups: " + " ".join(f"{x:.2f}" for x in round_ratios))
    speedup = m1 / m2
    # Wall time scaled to a whole core per worker (CPU-bound work: wall ~ 1 / CPU share). An
    # estimate for a loaded machine, not a measurement.
    estimate = (m1 * cores[1]) / (m2 * cores[2] / 2)
    print(f"CPU-share-normalized speedup estimate (as if each worker had a whole core): {estimate:.2f}")
    print(f"SUMMARY worker_speedup {args.env} {args.pairs} pairs: speedup 2 vs 1 workers = {speedup:.2f} "
          f"(median of per-round ratios {statistics.median(round_ratios):.2f}); target >= {TARGET} "
          f"({'met' if speedup >= TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()

"""Dask overhead: the per-iteration cost of the scheduler as a function of the number of tasks,
projected to the paper's 1,440 workers.

What is measured: a LocalCluster from ``esrepro.distributed.cluster.connect`` (``--workers``,
default 2 single-threaded worker processes). One iteration does what ``esrepro.train.Trainer``
does: scatter a payload (broadcast) of ``--params`` float32 values (default: the 256-256 tanh
Humanoid policy of the reference config, 376 -> 256 -> 256 -> 17 = 166,673 parameters, plus
observation mean and std), submit n tasks that carry only integers and the payload's future,
each taking exactly ``--task-ms`` ms of wall time and returning a few scalars like an ES chunk,
and gather. For n in ``--tasks`` (default 2, 4, ..., 1024), ``--repeats`` times, interleaved,
after one warm-up iteration, for each kind of work in ``--work``:

* ``busy``: the task spins on ``time.perf_counter`` (uses its core, like a rollout); on this
  machine the busy workers then compete with the scheduler for the cores;
* ``sleep``: the task sleeps, leaving the cores to the scheduler and client, as on a cluster
  where the scheduler has its own machine;

and measures:

* overhead = wall time - ideal, ideal = n * task_ms / workers (perfect packing);
* master CPU per task: CPU seconds of this process (Dask client and, for a LocalCluster, the
  scheduler: they share one event loop) per task -- the serial work that does not spread over
  workers;
* worker CPU beyond the work, per task (``time.process_time`` in the workers minus the busy time).

Overhead = a + b * n is fitted by least squares on the per-n medians, then projected to the
paper's scaling run (Figure 1: Humanoid to 6000 in 10 min on 1,440 cores) with 4 tasks per
worker (5,760 tasks, esrepro's default chunking) and 1 task per worker (1,440), as a fraction
of an iteration for several assumed iteration times (no per-iteration log of that run is public).

Limits: 2 local workers over loopback. What extrapolates is the cost per task on the
scheduler and client; network latency, the payload broadcast to 1,440 hosts and the
scheduler's per-worker bookkeeping are not measured. The task function is defined in this
script, so Dask pickles it by value with every task (esrepro's task functions are pickled by
reference): ~0.1-0.2 ms more client CPU per task here.

    python benchmarks/dask_overhead.py [--workers 2] [--task-ms 5] [--tasks 2 4 ... 1024] [--repeats 3]
                                       [--work busy sleep]
"""

import argparse
import itertools
import logging
import statistics
import time
import warnings

import numpy as np
import psutil

from esrepro.distributed.cluster import connect

#: Reference Humanoid policy: obs 376 (Humanoid-v1) -> 256 -> 256 -> 17, weights and biases.
HUMANOID_PARAMS = 376 * 256 + 256 + 256 * 256 + 256 + 256 * 17 + 17
PAPER_WORKERS = 1_440
PAPER_MINUTES = 10
#: Assumed iteration times (s) at 1,440 workers, central value first; see ``project``.
ASSUMED_ITERATION_S = (3.0, 0.5, 1.0, 10.0)


def timed_task(payload, iteration: int, index: int, seconds: float, busy: bool) -> np.ndarray:
    """Spin (``busy``) or sleep for ``seconds`` of wall time; return a few scalars shaped like an
    ES chunk's result."""
    if busy:
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            pass
    else:
        time.sleep(seconds)
    return np.array([iteration, index, payload[0].size, 0.0, 0.0])


def master_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def iteration(client, n: int, task_s: float, busy: bool, params: int, it: int) -> dict:
    """One timed iteration of ``n`` tasks: scatter, submit, gather."""
    before = client.run(time.process_time)
    cpu0, t0 = master_cpu(), time.perf_counter()
    theta = np.full(params, it, dtype=np.float32)
    [payload] = client.scatter([(theta, np.zeros(376, np.float32), np.ones(376, np.float32))], broadcast=True,
                               hash=False)
    futures = [client.submit(timed_task, payload, it, i, task_s, busy, pure=False) for i in range(n)]
    results = client.gather(futures)
    wall, cpu = time.perf_counter() - t0, master_cpu() - cpu0
    after = client.run(time.process_time)
    assert len(results) == n and all(r[1] == i for i, r in enumerate(results))
    worker_extra = sum(after[a] - before[a] for a in before) - (n * task_s if busy else 0.0)
    return {"wall": wall, "master_cpu": cpu, "worker_extra": worker_extra}


def fit(ns, overheads):
    """Least-squares a, b of overhead = a + b * n."""
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones(len(ns)), ns]), np.asarray(overheads), rcond=None)
    return a, b


def measure(client, args, busy: bool) -> dict:
    """All repeats of all task counts for one kind of work; returns {n: [iteration results]}."""
    task_s = args.task_ms / 1e3
    iteration(client, 64, task_s, busy, args.params, 0)  # warm-up
    runs, counter = {n: [] for n in args.tasks}, itertools.count(1)
    for r in range(args.repeats):
        for n in args.tasks if r % 2 == 0 else args.tasks[::-1]:
            runs[n].append(iteration(client, n, task_s, busy, args.params, next(counter)))
    return runs


def summarize(work: str, runs: dict, args) -> dict:
    """Print the per-n table of one kind of work; return the fit (a, b) and the master CPU per task."""
    print(f"\nwork = {work}: {args.workers} worker(s), tasks of {args.task_ms:g} ms, medians of {args.repeats}")
    print(f"{'tasks':>6} {'ideal s':>8} {'wall s':>8} {'overhead s':>11} {'per task ms':>12} "
          f"{'master CPU/task ms':>19} "
          f"{'worker CPU extra/task ms':>25}")
    overheads, cpus = [], {}
    for n, rs in runs.items():
        ideal = n * args.task_ms / 1e3 / args.workers
        wall = statistics.median(r["wall"] for r in rs)
        cpus[n] = statistics.median(r["master_cpu"] for r in rs) / n
        extra = statistics.median(r["worker_extra"] for r in rs) / n
        overheads.append(wall - ideal)
        print(f"{n:>6} {ideal:>8.3f} {wall:>8.3f} {wall - ideal:>11.3f} {(wall - ideal) / n * 1e3:>12.3f} "
              f"{cpus[n] * 1e3:>19.3f} {extra * 1e3:>25.3f}")
    a, b = fit(np.array(list(runs), dtype=float), overheads)
    big = [n for n in runs if n >= 64] or list(runs)
    cpu = statistics.median(cpus[n] for n in big)
    print(f"fit overhead = a + b*n: a = {a * 1e3:.1f} ms per iteration, b = {b * 1e3:.3f} ms per task; "
          f"master (client + scheduler) CPU per task, median over n >= {min(big)}: {cpu * 1e3:.3f} ms")
    return {"a": a, "b": b, "cpu": cpu}


def project(fits: dict):
    """Print the overhead at 1,440 workers with 4 and 1 tasks per worker, for each kind of work."""
    t0 = ASSUMED_ITERATION_S[0]
    print(f"\nProjection to the paper's {PAPER_WORKERS:,} workers (Humanoid to 6000 in {PAPER_MINUTES} min):")
    print("  Iteration time there is not published. Reference config: >= 10,000 episodes and >= 100,000\n"
          f"  timesteps per iteration, i.e. ~7 episodes per worker. Assumed: {t0:g} s per iteration\n"
          f"  ({PAPER_MINUTES * 60 / t0:.0f} iterations in {PAPER_MINUTES} min: 7 episodes of ~400 steps at ~1 ms per "
          "step of the 2017 TF + mujoco-py\n  stack); short early-training episodes make iterations of ~0.5 s, "
          "1000-step episodes ~10 s.\n  Fraction = overhead / (iteration + overhead).")
    print(f"  {'work':>5} {'tasks':>7} {'fit a+b*n':>10} {'master CPU':>11}  " +
          " ".join(f"{'frac @' + format(t, 'g') + ' s':>11}" for t in ASSUMED_ITERATION_S))
    for work, f in fits.items():
        for label, n in (("4 per worker", 4 * PAPER_WORKERS), ("1 per worker", PAPER_WORKERS)):
            over, serial = f["a"] + f["b"] * n, f["cpu"] * n
            fracs = " ".join(f"{over / (t + over):>11.1%}" for t in ASSUMED_ITERATION_S)
            print(f"  {work:>5} {n:>7,} {over:>9.2f}s {serial:>10.2f}s  {fracs}   ({label})")
    print("  'master CPU' = n x the measured client+scheduler CPU per task: serial work on one core per\n"
          "  iteration (a floor if it cannot overlap the rollouts). The fit's b also holds per-task costs that\n"
          "  at 1,440 workers run in parallel on the workers, so a + b*n overstates those; network round\n"
          "  trips, the broadcast of the parameters to 1,440 hosts and per-worker scheduler bookkeeping are\n"
          "  in neither number.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--task-ms", type=float, default=5.0, help="wall time of each task")
    ap.add_argument("--tasks", type=int, nargs="+", default=[2 ** k for k in range(1, 11)])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", nargs="+", choices=("busy", "sleep"), default=["busy", "sleep"])
    ap.add_argument("--params", type=int, default=HUMANOID_PARAMS, help="float32 values in the scattered payload")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Port .* is already in use")

    t_start, load0 = time.perf_counter(), psutil.getloadavg()
    with connect(args.workers) as client:
        client.wait_for_workers(args.workers)
        runs = {work: measure(client, args, work == "busy") for work in args.work}
    print(f"payload {args.params:,} float32 (broadcast); run took {time.perf_counter() - t_start:.0f} s on "
          f"{psutil.cpu_count()} cores; load average at start {tuple(round(x, 2) for x in load0)}, at end "
          f"{tuple(round(x, 2) for x in psutil.getloadavg())}")
    fits = {work: summarize(work, r, args) for work, r in runs.items()}
    project(fits)
    n, t0 = 4 * PAPER_WORKERS, ASSUMED_ITERATION_S[0]
    parts = [f"{w}: {f['a'] + f['b'] * n:.2f} s ({(f['a'] + f['b'] * n) / (t0 + f['a'] + f['b'] * n):.0%}), "
             f"master CPU floor {f['cpu'] * n:.2f} s" for w, f in fits.items()]
    print(f"SUMMARY dask_overhead: projected overhead per iteration at {n:,} tasks on {PAPER_WORKERS:,} workers, "
          f"share of an assumed {t0:g} s iteration -- " + "; ".join(parts))


if __name__ == "__main__":
    main()
